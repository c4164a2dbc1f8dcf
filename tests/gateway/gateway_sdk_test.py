"""`ledger gateway` driven by the real WeChat Pay v3 SDK (wechatpayv3, unmodified), as a merchant drives it.

    gateway_sdk_test.py LEDGER_BINARY SDK_PYTHON

Runs itself again under SDK_PYTHON (the venv scripts/setup.sh makes); exits 77 (skipped, saying why) when that
Python has no wechatpayv3. The SDK's only changes are its gateway address (ours) and the CA its `requests`
trusts (REQUESTS_CA_BUNDLE: the gateway's CA). Every 2xx answer is verified by the SDK itself with the platform
public key; the tests then check what moved in the ledger once the gateway stopped.
"""
import base64
import json
import os
import socket
import select
import subprocess
import sys
import tempfile
import time
import unittest

SKIP = 77
LEDGER = None
DEADLINE_S = 60


def reexec_under_sdk_python():
    sdk_python = sys.argv[2]
    if os.environ.get("GATEWAY_SDK_CHILD"):
        return
    if not os.path.exists(sdk_python):
        print(f"skipped: no SDK venv at {sdk_python} (scripts/setup.sh makes it; PyPI unreachable?)")
        sys.exit(SKIP)
    os.environ["GATEWAY_SDK_CHILD"] = "1"
    os.execv(sdk_python, [sdk_python] + sys.argv)


def run_ledger(*args, check=True):
    done = subprocess.run([LEDGER, *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def read_kit(folder):
    def text(name):
        with open(os.path.join(folder, name)) as f:
            return f.read()
    return {name: text(name) for name in ("apiclient_key.pem", "serial_no", "apiv3_key", "platform_public_key.pem",
                                          "platform_public_key_id", "ca.pem")}


class Background:
    """A ledger program that runs until it is stopped by its process id."""

    def __init__(self, args, log_path):
        self.log = open(log_path, "a")
        self.process = subprocess.Popen([LEDGER, *args], stdout=subprocess.PIPE, stderr=self.log, text=True)

    def first_line(self, prefix):
        ready, _, _ = select.select([self.process.stdout], [], [], DEADLINE_S)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith(prefix):
            self.stop()
            with open(self.log.name) as f:
                said = f.read()[-2000:]
            raise AssertionError(f"{prefix!r} expected first, got {line!r}; {self.log.name} ends:\n{said}")
        return line[len(prefix):]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.log.close()
        return self.process.returncode


class Gateway(Background):
    """One `ledger gateway` run on a free port; stopped by its process id."""

    def __init__(self, data, log_path, port, extra_args=()):
        super().__init__(["gateway", "--data", data, "--listen", f"127.0.0.1:{port}", *extra_args], log_path)
        self.url = "https://" + self.first_line("gateway=https://")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def merchant_client(kit, url, mchid):
    from wechatpayv3 import WeChatPay, WeChatPayType
    pay = WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=mchid, private_key=kit["apiclient_key.pem"],
                    cert_serial_no=kit["serial_no"].strip(), appid="wx_ledger_test",
                    apiv3_key=kit["apiv3_key"].strip(), notify_url="https://127.0.0.1:9/notify",
                    public_key=kit["platform_public_key.pem"], public_key_id=kit["platform_public_key_id"].strip())
    pay._core._gate_way = url
    return pay


COMMANDS = [
    {"type": "open_merchant", "command_id": "m1", "merchant": "M1", "name": "Rail tickets", "fee_bps": 60},
    {"type": "open_merchant", "command_id": "m2", "merchant": "M2", "name": "Books", "fee_bps": 60},
    {"type": "open_account", "command_id": "a1", "customer": "C1", "account": "C1:debit", "kind": "debit_card"},
    {"type": "deposit", "command_id": "d1", "account": "C1:debit", "amount_minor": 1_000_000},
]


def pay(order, merchant, amount):
    return {"type": "pay", "command_id": f"pay-{merchant}-{order}", "merchant": merchant,
            "merchant_order_no": order, "customer": "C1", "funding": "own_account", "account": "C1:debit",
            "channel": "b2c_pc", "medium": "u_shield", "order_amount_minor": amount}


class GatewaySdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="gateway-sdk-")
        cls.data = os.path.join(cls.scratch.name, "data")
        commands = COMMANDS + [pay("O1", "M1", 10_000), pay("O2", "M1", 20_000), pay("O3", "M2", 30_000)]
        path = os.path.join(cls.scratch.name, "setup.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in commands))
        run_ledger("submit", "--data", cls.data, path)
        for mchid in ("M1", "M2"):
            run_ledger("merchant-keys", "--data", cls.data, "--merchant", mchid,
                       "--out", os.path.join(cls.scratch.name, f"kit-{mchid}"))
        events = [json.loads(line) for line in run_ledger("events", "--data", cls.data, "--json").stdout.splitlines()]
        date = next(e["payload"]["clearing_date"] for e in events if e["type"] == "PaymentCaptured")
        cls.clearing_date = f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}"
        # M2 also gets an SM2 key (国密), which signs WECHATPAY2-SM2-WITH-SM3 requests (test_11).
        run_ledger("merchant-keys", "--data", cls.data, "--merchant", "M2", "--algorithm", "sm2",
                   "--out", os.path.join(cls.scratch.name, "kit-M2-sm2"))
        cls.kits = {m: read_kit(os.path.join(cls.scratch.name, f"kit-{m}")) for m in ("M1", "M2", "M2-sm2")}
        os.environ["REQUESTS_CA_BUNDLE"] = os.path.join(cls.scratch.name, "kit-M1", "ca.pem")
        cls.port = free_port()
        cls.gateway = Gateway(cls.data, os.path.join(cls.scratch.name, "gateway.log"), cls.port)
        cls.m1 = merchant_client(cls.kits["M1"], cls.gateway.url, "M1")
        cls.m2 = merchant_client(cls.kits["M2"], cls.gateway.url, "M2")

    @classmethod
    def tearDownClass(cls):
        if cls.gateway.process.poll() is None:
            cls.gateway.stop()
        cls.scratch.cleanup()

    def signed_raw(self, mchid, method, path, body=""):
        """The SDK's own Authorization for a request, to send it (or a tampered copy) with requests."""
        from wechatpayv3.utils import build_authorization, load_private_key
        kit = self.kits[mchid]
        data = json.loads(body) if body else None
        header = build_authorization(path, method, mchid, kit["serial_no"].strip(),
                                     load_private_key(kit["apiclient_key.pem"]), data=data)
        return header

    def send_raw(self, method, path, authorization, body=""):
        import requests
        headers = {"Authorization": authorization, "Content-Type": "application/json", "Accept": "application/json"}
        return requests.request(method, self.gateway.url + path, headers=headers, data=body.encode(), timeout=30)

    def test_01_query_by_order_number_and_transaction_id(self):
        code, text = self.m1.query(out_trade_no="O1")
        self.assertEqual(code, 200, text)
        answer = json.loads(text)
        self.assertEqual((answer["trade_state"], answer["mchid"], answer["out_trade_no"]), ("SUCCESS", "M1", "O1"))
        self.assertEqual(answer["amount"]["total"], 10_000)
        code, again = self.m1.query(transaction_id=answer["transaction_id"])
        self.assertEqual(code, 200, again)
        self.assertEqual(json.loads(again)["out_trade_no"], "O1")

    def test_02_unknown_order_is_404(self):
        code, text = self.m1.query(out_trade_no="NO-SUCH")
        self.assertEqual(code, 404, text)
        self.assertEqual(json.loads(text)["code"], "ORDER_NOT_EXIST")

    def test_03_another_merchants_order_is_403(self):
        code, text = self.m1.query(out_trade_no="O1")
        self.assertEqual(code, 200, text)
        transaction_id = json.loads(text)["transaction_id"]
        code, text = self.m2.query(transaction_id=transaction_id)
        self.assertEqual(code, 403, text)
        self.assertEqual(json.loads(text)["code"], "NO_AUTH")
        code, text = self.m2.query(out_trade_no="O1", mchid="M1")
        self.assertEqual(code, 403, text)
        code, text = self.m2.refund(out_refund_no="R-STEAL", transaction_id=transaction_id,
                                    amount={"refund": 100, "total": 10_000, "currency": "CNY"})
        self.assertEqual(code, 403, text)
        code, text = self.m2.codepay_reverse(out_trade_no="O1", mchid="M1")
        self.assertEqual(code, 403, text)
        self.assertEqual(self.m2.query_refund(out_refund_no="R-STEAL")[0], 404)
        self.assertEqual(json.loads(self.m1.query(out_trade_no="O1")[1])["trade_state"], "SUCCESS")

    def test_04_partial_refund_is_idempotent_on_its_number(self):
        amount = {"refund": 2_500, "total": 10_000, "currency": "CNY"}
        code, text = self.m1.refund(out_refund_no="R1", amount=amount, out_trade_no="O1")
        self.assertEqual(code, 200, text)
        first = json.loads(text)
        self.assertEqual((first["status"], first["amount"]["refund"]), ("SUCCESS", 2_500))
        code, text = self.m1.refund(out_refund_no="R1", amount=amount, out_trade_no="O1")
        self.assertEqual(code, 200, text)
        self.assertEqual(json.loads(text)["refund_id"], first["refund_id"])
        code, text = self.m1.refund(out_refund_no="R1", amount=dict(amount, refund=3_000), out_trade_no="O1")
        self.assertEqual(code, 400, text)
        self.assertEqual(json.loads(text)["code"], "INVALID_REQUEST")
        code, text = self.m1.query_refund(out_refund_no="R1")
        self.assertEqual(code, 200, text)
        self.assertEqual(json.loads(text)["refund_id"], first["refund_id"])
        code, text = self.m1.query(out_trade_no="O1")
        self.assertEqual(json.loads(text)["trade_state"], "REFUND")

    def test_05_refund_beyond_what_remains_is_refused(self):
        code, text = self.m1.refund(out_refund_no="R-TOO-MUCH", amount={"refund": 9_000, "total": 10_000,
                                                                         "currency": "CNY"}, out_trade_no="O1")
        self.assertEqual(code, 400, text)
        self.assertIn("REFUND_EXCEEDS_REMAINING", json.loads(text)["message"])

    def test_06_reverse(self):
        code, text = self.m1.codepay_reverse(out_trade_no="O2")
        self.assertEqual(code, 200, text)
        code, text = self.m1.codepay_reverse(out_trade_no="O2")
        self.assertEqual(code, 200, text)
        code, text = self.m1.query(out_trade_no="O2")
        self.assertEqual(json.loads(text)["trade_state"], "REVOKED")

    def test_07_tampered_requests_are_401_and_move_nothing(self):
        body = json.dumps({"out_trade_no": "O3", "out_refund_no": "R-T", "amount": {"refund": 1, "total": 30_000}})
        path = "/v3/refund/domestic/refunds"
        authorization = self.signed_raw("M2", "POST", path, body)
        tampered = body.replace('"refund": 1', '"refund": 29999')
        self.assertEqual(self.send_raw("POST", path, authorization, tampered).status_code, 401)
        query = "/v3/pay/transactions/out-trade-no/O3?mchid=M2"
        authorization = self.signed_raw("M2", "GET", query)
        self.assertEqual(self.send_raw("GET", query.replace("O3", "O1"), authorization).status_code, 401)
        self.assertEqual(self.send_raw("GET", query, authorization).status_code, 200)
        m1_query = "/v3/pay/transactions/out-trade-no/O1?mchid=M1"
        m1_authorization = self.signed_raw("M1", "GET", m1_query)
        self.assertEqual(self.send_raw("GET", m1_query, m1_authorization).status_code, 200)
        self.__class__.admitted = (m1_query, m1_authorization)
        replay = self.send_raw("GET", query, authorization)
        self.assertEqual(replay.status_code, 401)
        self.assertEqual(replay.json()["code"], "SIGN_ERROR")
        other_serial = authorization.replace(self.kits["M2"]["serial_no"].strip(), "0" * 40)
        self.assertEqual(self.send_raw("GET", query, other_serial).status_code, 401)
        stale = self.stale_authorization("M2", "GET", query)
        self.assertEqual(self.send_raw("GET", query, stale).status_code, 401)
        self.assertEqual(self.send_raw("GET", query, "").status_code, 401)
        self.assertEqual(self.m2.query_refund(out_refund_no="R-T")[0], 404)

    def test_08_the_trade_bill_downloads_with_its_hash(self):
        import gzip
        import hashlib
        code, text = self.m1.trade_bill(bill_date=self.clearing_date)
        self.assertEqual(code, 200, text)
        answer = json.loads(text)
        self.assertEqual(answer["hash_type"], "SHA1")
        code, content = self.m1.download_bill(answer["download_url"])
        self.assertEqual(code, 200, content)
        self.assertEqual(hashlib.sha1(content).hexdigest(), answer["hash_value"])
        bill = gzip.decompress(content).decode("utf-8")
        self.assertIn("`O1,", bill)
        self.assertNotIn("`O3,", bill)  # M2's order
        with open(os.path.join(self.scratch.name, "bill-M1.csv"), "w") as f:
            f.write(bill)
        code, text = self.m1.trade_bill(bill_date="2999-01-01")
        self.assertEqual(code, 400, text)
        self.assertEqual(json.loads(text)["code"], "NO_STATEMENT_EXIST")

    def test_09_a_native_order_waits_and_closes(self):
        code, text = self.m1.pay(description="rail ticket", out_trade_no="N1", amount={"total": 5_000})
        self.assertEqual(code, 200, text)
        code_url = json.loads(text)["code_url"]
        self.assertIn("N1", code_url)
        code, again = self.m1.pay(description="rail ticket", out_trade_no="N1", amount={"total": 5_000})
        self.assertEqual((code, json.loads(again)["code_url"]), (200, code_url))  # the same request: same answer
        code, text = self.m1.pay(description="rail ticket", out_trade_no="N1", amount={"total": 6_000})
        self.assertEqual(code, 400, text)
        code, text = self.m1.query(out_trade_no="N1")
        self.assertEqual(code, 200, text)
        self.assertEqual((json.loads(text)["trade_state"], json.loads(text)["amount"]["total"]), ("NOTPAY", 5_000))
        self.assertEqual(self.m2.close(out_trade_no="N1", mchid="M1")[0], 403)
        self.assertEqual(self.m2.close(out_trade_no="N1")[0], 404)  # M2 has no order N1
        code, text = self.m1.close(out_trade_no="N1")
        self.assertEqual(code, 204, text)
        self.assertEqual(json.loads(self.m1.query(out_trade_no="N1")[1])["trade_state"], "CLOSED")
        code, text = self.m1.pay(description="a second order", out_trade_no="O1", amount={"total": 10_000})
        self.assertEqual(code, 403, text)
        self.assertEqual(json.loads(text)["code"], "OUT_TRADE_NO_USED")
        code, text = self.m1.close(out_trade_no="O1")
        self.assertEqual(code, 400, text)
        self.assertEqual(json.loads(text)["code"], "ORDERPAID")
        self.assertEqual(json.loads(self.m1.query(out_trade_no="O1")[1])["trade_state"], "REFUND")

    def test_10_a_thousand_random_mutations_of_a_signed_refund_are_all_refused(self):
        """The property: once a signed money request was admitted, no mutation of it — of its method, path,
        body or any part of its Authorization header — is admitted again, and nothing more moves."""
        import random
        import re
        import requests
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        path = "/v3/refund/domestic/refunds"
        body = json.dumps({"out_trade_no": "O3", "out_refund_no": "R-P", "amount": {"refund": 100, "total": 30_000}})
        authorization = self.signed_raw("M2", "POST", path, body)
        session = requests.Session()

        def send(method, target, header, data):
            headers = {"Authorization": header, "Content-Type": "application/json", "Accept": "application/json"}
            return session.request(method, self.gateway.url + target, headers=headers, data=data.encode("utf-8",
                                   "surrogateescape"), timeout=30).status_code

        self.assertEqual(send("POST", path, authorization, body), 200)
        # What each part may hold and still reach the server (a client refuses a line break in a header, a path
        # not starting with '/').
        body_alphabet = "0123456789ABCDEFabcdef=+/\",:_- \n{}"
        header_alphabet = "0123456789ABCDEFabcdef=+/\",:_- "
        path_alphabet = "0123456789abcdefxyz-_/.%"

        def mutate_text(text, alphabet):
            at = rng.randrange(len(text) + 1)
            operation = rng.randrange(3)
            if operation == 0 and text:  # replace one character by another
                at = min(at, len(text) - 1)
                return text[:at] + rng.choice([c for c in alphabet if c != text[at]]) + text[at + 1:]
            if operation == 1 or not text:
                return text[:at] + rng.choice(alphabet) + text[at:]
            return text[:at] + text[at + 1:]

        fields = re.findall(r'(\w+)="([^"]*)"', authorization)
        refused = 0
        for _ in range(1_000):
            method, target, header, data = "POST", path, authorization, body
            part = rng.randrange(5)
            if part == 0:
                data = mutate_text(body, body_alphabet)
            elif part == 1:
                target = "/" + mutate_text(path[1:], path_alphabet) if rng.random() < 0.7 else path + "?mchid=M2"
            elif part == 2:
                method = rng.choice(["PUT", "PATCH", "GET", "DELETE"])
            elif part == 3:  # one field of the header
                name, value = rng.choice(fields)
                header = header.replace(f'{name}="{value}"', f'{name}="{mutate_text(value, header_alphabet)}"', 1)
            else:  # the header as a whole
                header = (mutate_text(header, header_alphabet) if rng.random() < 0.7
                          else header[:rng.randrange(len(header))])
            # A client refuses a header value starting with white space; what no client sends is not a request.
            header = header.lstrip(" ")
            if (method, target, header, data) == ("POST", path, authorization, body):
                header = header + " "
            status = send(method, target, header, data)
            self.assertFalse(200 <= status < 300, f"seed {seed}: admitted {method} {target} {header!r} {data!r}")
            refused += 1
        self.assertEqual(refused, 1_000)
        code, text = self.m2.query_refund(out_refund_no="R-P")
        self.assertEqual((code, json.loads(text)["amount"]["refund"]), (200, 100), text)

    def stale_authorization(self, mchid, method, path):
        """A request signed correctly, six minutes ago."""
        from wechatpayv3.utils import load_private_key, rsa_sign
        kit = self.kits[mchid]
        timestamp = str(int(time.time()) - 360)
        nonce = "STALE" + timestamp
        signature = rsa_sign(load_private_key(kit["apiclient_key.pem"]),
                             f"{method}\n{path}\n{timestamp}\n{nonce}\n\n")
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
                f'timestamp="{timestamp}",serial_no="{kit["serial_no"].strip()}"')

    def openssl_request(self, kit, scheme, digest, path):
        """GET `path` with curl, signed by `kit`'s key with the openssl command line (SM2: the standard's ID)."""
        folder = os.path.join(self.scratch.name, f"kit-{kit}")
        timestamp, nonce = str(int(time.time())), os.urandom(16).hex().upper()
        message = os.path.join(self.scratch.name, "message")
        with open(message, "w") as f:
            f.write(f"GET\n{path}\n{timestamp}\n{nonce}\n\n")
        sm2_id = ["-sigopt", "distid:1234567812345678"] if digest == "-sm3" else []
        signature = subprocess.run(["openssl", "dgst", digest, "-sign", os.path.join(folder, "apiclient_key.pem"),
                                    *sm2_id, message], check=True, capture_output=True).stdout
        authorization = (f'{scheme} mchid="M2",nonce_str="{nonce}",timestamp="{timestamp}",'
                         f'serial_no="{self.kits[kit]["serial_no"].strip()}",'
                         f'signature="{base64.b64encode(signature).decode()}"')
        answer = subprocess.run(["curl", "-sS", "--cacert", os.path.join(folder, "ca.pem"), "-D", "-",
                                 "-H", f"Authorization: {authorization}", self.gateway.url + path],
                                check=True, capture_output=True).stdout.decode()  # bytes: keep the CRLFs
        head, _, body = answer.partition("\r\n\r\n")
        status = int(head.split()[1])
        headers = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in head.splitlines()[1:]}
        return status, headers, body

    def test_11_a_merchants_sm2_key_signs_with_sm2_and_sm3(self):
        path = "/v3/pay/transactions/out-trade-no/O3?mchid=M2"
        status, headers, body = self.openssl_request("M2-sm2", "WECHATPAY2-SM2-WITH-SM3", "-sm3", path)
        self.assertEqual(status, 200, body)
        self.assertEqual((json.loads(body)["out_trade_no"], json.loads(body)["amount"]["total"]), ("O3", 30_000))
        # The answer is signed with the platform's RSA key (WeChat's default for responses): openssl checks it.
        self.assertEqual(headers["wechatpay-signature-type"], "WECHATPAY2-SHA256-RSA2048")
        folder = os.path.join(self.scratch.name, "kit-M2-sm2")
        signed = os.path.join(self.scratch.name, "signed"), os.path.join(self.scratch.name, "signature")
        with open(signed[0], "w") as f:
            f.write(f'{headers["wechatpay-timestamp"]}\n{headers["wechatpay-nonce"]}\n{body}\n')
        with open(signed[1], "wb") as f:
            f.write(base64.b64decode(headers["wechatpay-signature"]))
        verified = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                                   os.path.join(folder, "platform_public_key.pem"), "-signature", signed[1],
                                   signed[0]], capture_output=True, text=True)
        self.assertEqual(verified.stdout.strip(), "Verified OK", verified.stderr)
        # The SM2 key's signature under the RSA scheme, and the RSA key's under the SM2 scheme, are refused.
        for kit, scheme, digest in (("M2-sm2", "WECHATPAY2-SHA256-RSA2048", "-sm3"),
                                    ("M2", "WECHATPAY2-SM2-WITH-SM3", "-sha256")):
            status, _, body = self.openssl_request(kit, scheme, digest, path)
            self.assertEqual((status, json.loads(body)["code"]), (401, "SIGN_ERROR"), body)

    def test_99_ledger_after_the_gateway_stopped(self):
        self.assertEqual(self.gateway.stop(), 0)
        balance = json.loads(run_ledger("balance", "--data", self.data, "C1:debit", "--json").stdout)
        # 1,000,000 deposited; O1 10,000 paid and 2,500 refunded, O2 20,000 reversed, O3 30,000 paid and 100
        # refunded (the one admitted request of the mutation test).
        self.assertEqual(balance["balance_minor"], 1_000_000 - 10_000 + 2_500 - 30_000 + 100)
        reconciled = run_ledger("reconcile", "--data", self.data, "--date", self.clearing_date, "--statement",
                                os.path.join(self.scratch.name, "bill-M1.csv"), "--format", "wechat", "--merchant",
                                "M1", "--out", os.path.join(self.scratch.name, "recon"), check=False)
        self.assertEqual(reconciled.returncode, 0, reconciled.stdout + reconciled.stderr)
        with open(os.path.join(self.scratch.name, "bill-M1.csv")) as f:
            bill = f.read()
        with open(os.path.join(self.scratch.name, "bill-M1-changed.csv"), "w") as f:
            f.write(bill.replace("`100.00,", "`99.00,", 1))
        broken = run_ledger("reconcile", "--data", self.data, "--date", self.clearing_date, "--statement",
                            os.path.join(self.scratch.name, "bill-M1-changed.csv"), "--format", "wechat",
                            "--merchant", "M1", "--out", os.path.join(self.scratch.name, "recon2"), check=False)
        self.assertEqual(broken.returncode, 3, broken.stdout + broken.stderr)
        serial = self.kits["M2"]["serial_no"].strip()
        revoked = run_ledger("merchant-keys", "--data", self.data, "--merchant", "M2", "--revoke", serial)
        self.assertIn(f"revoked={serial}", revoked.stdout)
        again = run_ledger("merchant-keys", "--data", self.data, "--merchant", "M2", "--revoke", serial)
        self.assertIn(f"revoked={serial}", again.stdout)  # the same revocation again: the same answer
        refused = run_ledger("merchant-keys", "--data", self.data, "--merchant", "M1", "--revoke", serial,
                             check=False)
        self.assertEqual(refused.returncode, 2, refused.stderr)
        self.assertIn("UNKNOWN_MERCHANT_KEY", refused.stderr)
        # A new key after the revocation (a rotation): the merchant keeps its APIv3 key.
        run_ledger("merchant-keys", "--data", self.data, "--merchant", "M2", "--out",
                   os.path.join(self.scratch.name, "kit-M2-new"))
        new_kit = read_kit(os.path.join(self.scratch.name, "kit-M2-new"))
        self.assertNotEqual(new_kit["serial_no"], self.kits["M2"]["serial_no"])
        self.assertEqual(new_kit["apiv3_key"], self.kits["M2"]["apiv3_key"])
        self.__class__.gateway = Gateway(self.data, os.path.join(self.scratch.name, "gateway2.log"), self.port)
        # The restarted gateway (same address) still refuses the replay of a request its last run admitted.
        replayed = self.send_raw("GET", self.admitted[0], self.admitted[1])
        self.assertEqual(replayed.status_code, 401, replayed.text)
        m2 = merchant_client(self.kits["M2"], self.gateway.url, "M2")
        code, text = m2.query(out_trade_no="O3")
        self.assertEqual(code, 401, text)
        code, text = merchant_client(new_kit, self.gateway.url, "M2").query(out_trade_no="O3")
        self.assertEqual(code, 200, text)
        m1 = merchant_client(self.kits["M1"], self.gateway.url, "M1")
        self.assertEqual(m1.query(out_trade_no="O1")[0], 200)


def main(doc, needs=("wechatpayv3",)):
    """A suite's entry: LEDGER_BINARY SDK_PYTHON; runs under SDK_PYTHON, skipped (77, saying why) when it lacks
    one of the modules in `needs`."""
    global LEDGER
    if len(sys.argv) != 3:
        print(doc, file=sys.stderr)
        sys.exit(2)
    reexec_under_sdk_python()
    for module in needs:
        try:
            __import__(module)
        except ImportError:
            print(f"skipped: {module} is not installed in {sys.executable}")
            sys.exit(SKIP)
    LEDGER = sys.argv[1]
    unittest.main(module="__main__", argv=[sys.argv[0], "-v"])


if __name__ == "__main__":
    main(__doc__)
