"""Drive tod-sim devices with the independent Python `librouteros` client and print what it saw.

Usage: librouteros_check.py HOST PLAIN_PORT LEGACY_PORT PASSWORD [ADH_PORT]
  PLAIN_PORT:  a router on RouterOS >= 6.43 (plain login)
  LEGACY_PORT: a device on RouterOS < 6.43 (MD5 challenge login)
  ADH_PORT:    api-ssl without a certificate (anonymous Diffie-Hellman), optional
Prints one JSON object; exits non-zero on any unexpected behaviour.
"""
import json
import ssl
import sys

from librouteros import connect
from librouteros.exceptions import TrapError
from librouteros.login import plain, token
from librouteros.query import Key


def main() -> int:
    host, plain_port, legacy_port, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    out = {}

    api = connect(username="admin", password=password, host=host, port=plain_port, login_method=plain, timeout=5)
    out["identity"] = next(iter(api.path("system", "identity")))["name"]
    name, mac, kind = Key("name"), Key("mac-address"), Key("type")
    rows = list(api.path("interface").select(name, mac).where(kind == "ether"))
    out["ether_macs"] = {r["name"]: r["mac-address"] for r in rows}
    out["ether_keys"] = sorted({k for r in rows for k in r})

    # A tagged command, read at the protocol level: every reply word carries the tag.
    api.protocol.writeSentence("/system/resource/print", ".tag=oracle7")
    tags = []
    while True:
        reply, words = api.protocol.readSentence()
        tags.append([w for w in words if w.startswith(".tag=")])
        if reply == "!done":
            break
    out["tagged_replies"] = tags

    try:
        list(api.path("interface", "wifi", "registration-table"))
        out["trap"] = None
    except TrapError as e:
        out["trap"] = e.message
    out["after_trap_identity"] = next(iter(api.path("system", "identity")))["name"]
    api.close()

    legacy = connect(username="admin", password=password, host=host, port=legacy_port, login_method=token, timeout=5)
    out["legacy_identity"] = next(iter(legacy.path("system", "identity")))["name"]
    legacy.close()

    try:
        connect(username="admin", password=password + "x", host=host, port=plain_port, login_method=plain, timeout=5)
        out["bad_password"] = "accepted"
    except TrapError as e:
        out["bad_password"] = e.message

    if len(sys.argv) > 5:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ADH:@SECLEVEL=0")
        adh = connect(username="admin", password=password, host=host, port=int(sys.argv[5]), login_method=plain, ssl_wrapper=ctx.wrap_socket, timeout=5)
        out["adh_identity"] = next(iter(adh.path("system", "identity")))["name"]
        adh.close()

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
