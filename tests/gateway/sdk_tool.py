"""What the real WeChat Pay v3 SDK (wechatpayv3, unmodified) makes and checks, for the gateway's tests.

  sdk_tool.py authorize KEY_PEM MCHID SERIAL METHOD PATH [BODY_JSON]
      prints {"authorization": ..., "body": ...}: the Authorization header the SDK builds for the request
      and the body bytes it sends (json.dumps of the data, as requests.post(json=...) sends it).
  sdk_tool.py verify-response PUBLIC_PEM TIMESTAMP NONCE SIGNATURE BODY_FILE
      prints true or false: whether the SDK accepts the response signature.
Exit 2 on bad usage.
"""
import json
import sys

from wechatpayv3.utils import build_authorization, load_private_key, load_public_key, rsa_verify


def main(argv):
    if len(argv) in (7, 8) and argv[1] == "authorize":
        key_pem, mchid, serial, method, path = argv[2:7]
        data = json.loads(argv[7]) if len(argv) == 8 else None
        with open(key_pem) as f:
            key = load_private_key(f.read())
        header = build_authorization(path, method, mchid, serial, key, data=data)
        body = json.dumps(data) if data else ""
        print(json.dumps({"authorization": header, "body": body}))
        return 0
    if len(argv) == 7 and argv[1] == "verify-response":
        public_pem, timestamp, nonce, signature, body_file = argv[2:7]
        with open(public_pem) as f:
            key = load_public_key(f.read())
        with open(body_file) as f:
            body = f.read()
        print("true" if rsa_verify(timestamp, nonce, body, signature, key) else "false")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
