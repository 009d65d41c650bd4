"""A simple Python poller with `librouteros`: the peer our Rust client is compared against.

Usage: librouteros_poll.py HOST PORT:METHOD,... PASSWORD ROUNDS   (METHOD: plain | token)
Logs in to every port once (persistent sessions, like our agent), then polls each device ROUNDS
times with the same commands as the Rust harness. Prints JSON: device polls, CPU seconds.
"""
import json
import sys
import time

from librouteros import connect
from librouteros.login import plain, token
from librouteros.exceptions import TrapError


def poll(api):
    list(api.rawCmd("/system/resource/print"))
    list(api.rawCmd("/interface/print", "=.proplist=name,type,mac-address,running,rx-byte,tx-byte"))
    for menu in ("/interface/wireless", "/interface/wifi", "/interface/wifiwave2"):
        try:
            list(api.rawCmd(menu + "/registration-table/print"))
            break
        except TrapError:
            continue
    list(api.rawCmd("/system/health/print"))


def main():
    host, targets, password, rounds = sys.argv[1], sys.argv[2].split(","), sys.argv[3], int(sys.argv[4])
    apis = []
    for t in targets:
        port, method = t.split(":")
        login = token if method == "token" else plain
        apis.append(connect(username="admin", password=password, host=host, port=int(port), login_method=login, timeout=10))
    start_cpu, start = time.process_time(), time.monotonic()
    polls = 0
    for _ in range(rounds):
        for api in apis:
            poll(api)
            polls += 1
    print(json.dumps({"device_polls": polls, "cpu_seconds": time.process_time() - start_cpu, "wall_seconds": time.monotonic() - start}))


if __name__ == "__main__":
    main()
