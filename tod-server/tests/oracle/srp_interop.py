#!/usr/bin/env python3
"""Independent SRP-6a oracle for tod-server, using pysrp (the `srp` package from PyPI).

    srp_interop.py enrol EMAIL PASSWORD        -> JSON {srp_salt, srp_verifier} (hex)
    srp_interop.py login URL EMAIL PASSWORD    -> prints the access token; checks the server's M2

pysrp in RFC 5054 mode with SHA-256 and the 2048-bit group computes exactly what TOD documents:
x = H(salt | H(I ":" P)), k = H(N | PAD(g)), u = H(PAD(A) | PAD(B)), K = H(S),
M1 = H(H(N) xor H(PAD(g)) | H(I) | salt | A | B | K), M2 = H(A | M1 | K); I = lower-cased e-mail.
"""
import json
import sys
import urllib.error
import urllib.request

import srp

srp.rfc5054_enable()
OPTS = dict(hash_alg=srp.SHA256, ng_type=srp.NG_2048)


def identity(email):
    return email.strip().lower()


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit(f"HTTP {e.code}: {e.read().decode()}")


def main():
    if sys.argv[1] == "enrol":
        email, password = sys.argv[2], sys.argv[3]
        salt, verifier = srp.create_salted_verification_key(identity(email), password, salt_len=16, **OPTS)
        print(json.dumps({"srp_salt": salt.hex(), "srp_verifier": verifier.hex()}))
    elif sys.argv[1] == "login":
        url, email, password = sys.argv[2].rstrip("/"), sys.argv[3], sys.argv[4]
        user = srp.User(identity(email), password, **OPTS)
        _, a_pub = user.start_authentication()
        ch = post(url + "/api/auth/srp/init", {"email": email})
        m1 = user.process_challenge(bytes.fromhex(ch["salt"]), bytes.fromhex(ch["server_public"]))
        if m1 is None:
            sys.exit("pysrp refused the challenge")
        tokens = post(
            url + "/api/auth/srp/verify",
            {"email": email, "session_id": ch["session_id"], "client_public": a_pub.hex(), "client_proof": m1.hex()},
        )
        user.verify_session(bytes.fromhex(tokens["server_proof"]))
        if not user.authenticated():
            sys.exit("the server's proof M2 does not verify")
        print(tokens["access_token"])
    else:
        sys.exit("usage: srp_interop.py enrol|login ...")


if __name__ == "__main__":
    main()
