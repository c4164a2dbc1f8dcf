"""The customer side of `ledger gateway`: a merchant's native order (made through the real wechatpayv3 SDK) paid
by a customer who proves the medium, through the bank channel's mutual TLS, with real counterparts for each proof:
pyotp (TOTP, RFC 6238) for the OTP card, oath (OCRA, RFC 6287) for the password device, `cryptography` for the
U-shield's RSA and the device's ECDSA P-256 signatures, the SMS outbox for sms.

    customer_api_test.py LEDGER_BINARY SDK_PYTHON

Runs itself again under SDK_PYTHON; exits 77 (skipped, saying why) when that Python lacks the clients.
"""
import base64
import datetime
import hashlib
import json
import secrets
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_sdk_test as sdk  # noqa: E402

MEDIA = ("u_shield", "fingerprint", "password_free", "otp_card", "password_device", "sms")


def read(path):
    with open(path) as f:
        return f.read()


class CustomerApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="gateway-customer-")
        cls.data = os.path.join(cls.scratch.name, "data")
        commands = sdk.COMMANDS + [
            {"type": "open_account", "command_id": "a2", "customer": "C2", "account": "C2:debit",
             "kind": "debit_card"},
            {"type": "deposit", "command_id": "d2", "account": "C2:debit", "amount_minor": 1_000_000}]
        path = os.path.join(cls.scratch.name, "setup.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in commands))
        cls.start_ledger(path)
        sdk.run_ledger("merchant-keys", "--data", cls.data, "--merchant", "M1",
                       "--out", os.path.join(cls.scratch.name, "kit-M1"), *cls.operator_args)
        cls.kits = {}
        for customer in ("C1", "C2"):
            for medium in MEDIA:
                out = os.path.join(cls.scratch.name, f"{customer}-{medium}")
                extra = ["--phone", "+8613800138000"] if medium == "sms" else []
                done = sdk.run_ledger("customer-enroll", "--data", cls.data, "--customer", customer, "--medium",
                                      medium, "--out", out, *extra, *cls.operator_args)
                assert f"enrolled={customer} {medium}" in done.stdout, done.stdout
                cls.kits[(customer, medium)] = out
        tls = os.path.join(cls.data, "gateway", "tls")
        os.environ["REQUESTS_CA_BUNDLE"] = os.path.join(cls.scratch.name, "kit-M1", "ca.pem")
        cls.gateway = sdk.Gateway(cls.data, os.path.join(cls.scratch.name, "gateway.log"), sdk.free_port(),
                                  cls.gateway_args)
        cls.m1 = sdk.merchant_client(sdk.read_kit(os.path.join(cls.scratch.name, "kit-M1")), cls.gateway.url, "M1")
        cls.channel_cert = (os.path.join(tls, "channel-client.pem"), os.path.join(tls, "channel-client.key"))
        cls.orders = 0

    # How the ledger behind the gateway runs: here the data folder's own shard, in the gateway's process. A
    # subclass runs it elsewhere (the shards behind Kafka) with the same tests.
    operator_args = ()  # for merchant-keys and customer-enroll
    gateway_args = ()
    extra_paid = {}  # what a subclass's own tests paid from an account, besides the tests here
    expiry_s = 2  # test_06's order: long enough to be made before it expires

    @classmethod
    def start_ledger(cls, commands_path):
        """Starts the ledger (again, after stop_ledger) and applies the commands file, when one is given."""
        if commands_path:
            sdk.run_ledger("submit", "--data", cls.data, commands_path)

    @classmethod
    def stop_ledger(cls):
        pass

    @classmethod
    def shard_folders(cls):
        return [cls.data]

    @classmethod
    def tearDownClass(cls):
        if cls.gateway.process.poll() is None:
            cls.gateway.stop()
        cls.stop_ledger()
        cls.scratch.cleanup()

    def ledger_events(self):
        """Every shard's events (JSON), once the gateway and the ledger stopped."""
        return [json.loads(line) for folder in self.shard_folders() for line in
                sdk.run_ledger("events", "--data", folder, "--json").stdout.splitlines()]

    def balance_minor(self, account):
        """The account's balance, from the shard that holds it."""
        for folder in self.shard_folders():
            done = sdk.run_ledger("balance", "--data", folder, account, "--json", check=False)
            if done.returncode == 0:
                return json.loads(done.stdout)["balance_minor"]
        raise AssertionError(f"no shard holds {account}")

    def order(self, amount, expire_s=None):
        """A native order of M1 through the merchant's SDK; its code_url."""
        self.__class__.orders += 1
        extra = {}
        if expire_s is not None:
            expire = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expire_s)
            extra["time_expire"] = expire.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        code, text = self.m1.pay(description="order", out_trade_no=f"N{self.orders}", amount={"total": amount},
                                 **extra)
        self.assertEqual(code, 200, text)
        return json.loads(text)["code_url"]

    def post(self, path, body, cert=True):
        import requests
        return requests.post(self.gateway.url + path, json=body, timeout=30,
                             cert=self.channel_cert if cert else None)

    def lookup(self, customer, code_url):
        answer = self.post("/customer/v1/orders/lookup",
                           {"customer": customer, "account": f"{customer}:debit", "code_url": code_url})
        self.assertEqual(answer.status_code, 200, answer.text)
        return answer.json()

    def pay(self, customer, code_url, medium, proof, **extra):
        body = {"customer": customer, "account": f"{customer}:debit", "funding": "own_account", "medium": medium,
                "proof": proof, "code_url": code_url, **extra}
        return self.post("/customer/v1/orders/pay", body)

    def sign(self, customer, medium, digest):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        folder = self.kits[(customer, medium)]
        name = "u_shield_key.pem" if medium == "u_shield" else "device_key.pem"
        key = serialization.load_pem_private_key(read(os.path.join(folder, name)).encode(), None)
        if medium == "u_shield":
            signature = key.sign(digest.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = key.sign(digest.encode(), ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def totp(self, customer):
        import pyotp
        return pyotp.TOTP(read(os.path.join(self.kits[(customer, "otp_card")], "totp_secret")).strip())

    def ocra(self, customer, challenge):
        import oath
        key = bytes.fromhex(read(os.path.join(self.kits[(customer, "password_device")], "ocra_key")).strip())
        suite = read(os.path.join(self.kits[(customer, "password_device")], "ocra_suite")).strip()
        return oath.str2ocrasuite(suite)(key, Q=challenge)

    def assert_paid(self, answer, code_url):
        self.assertEqual(answer.status_code, 200, answer.text)
        self.assertEqual(answer.json()["trade_state"], "SUCCESS")
        order_no = code_url.rsplit("/", 1)[1]
        code, text = self.m1.query(out_trade_no=order_no)  # the merchant sees it, signed by the platform
        self.assertEqual((code, json.loads(text)["trade_state"]), (200, "SUCCESS"), text)
        self.assertEqual(json.loads(text)["transaction_id"], answer.json()["transaction_id"])

    def assert_refused(self, answer, status, code, code_url):
        self.assertEqual(answer.status_code, status, answer.text)
        self.assertEqual(answer.json()["code"], code, answer.text)
        order_no = code_url.rsplit("/", 1)[1]
        self.assertEqual(json.loads(self.m1.query(out_trade_no=order_no)[1])["trade_state"], "NOTPAY")

    def test_01_without_the_channel_certificate_nothing_is_answered(self):
        code_url = self.order(1_000)
        answer = self.post("/customer/v1/orders/lookup",
                           {"customer": "C1", "account": "C1:debit", "code_url": code_url}, cert=False)
        self.assertEqual(answer.status_code, 401, answer.text)
        self.assertEqual(answer.json()["code"], "CHANNEL_CERTIFICATE_REQUIRED")
        answer = self.post("/customer/v1/orders/pay", {"customer": "C1", "account": "C1:debit", "medium": "otp_card",
                                                       "proof": {"code": self.totp("C1").now()},
                                                       "code_url": code_url}, cert=False)
        self.assertEqual(answer.status_code, 401, answer.text)

    def test_02_each_medium_pays_with_its_proof(self):
        for medium in MEDIA:
            with self.subTest(medium=medium):
                code_url = self.order(50_000)
                digest = self.lookup("C1", code_url)["payment_digest"]
                if medium in ("u_shield", "fingerprint"):
                    answer = self.pay("C1", code_url, medium, {"signature": self.sign("C1", medium, digest)})
                elif medium == "password_free":
                    answer = self.pay("C1", code_url, medium, {},
                                      device_signature=self.sign("C1", medium, digest))
                elif medium == "otp_card":
                    # One step ahead: a code not used by another payment of this run yet.
                    answer = self.pay("C1", code_url, medium, {"code": self.totp("C1").at(time.time() + 30)})
                elif medium == "password_device":
                    challenge = self.lookup("C1", code_url)["ocra_challenge"]
                    answer = self.pay("C1", code_url, medium, {"code": self.ocra("C1", challenge)})
                else:
                    sent = self.post("/customer/v1/sms-challenge",
                                     {"customer": "C1", "account": "C1:debit", "code_url": code_url})
                    self.assertEqual(sent.status_code, 200, sent.text)
                    self.assertEqual(sent.json()["phone"], "+86*******8000")
                    outbox = read(os.path.join(self.data, "gateway", "sms-outbox.jsonl")).splitlines()
                    text = json.loads(outbox[-1])["text"]
                    answer = self.pay("C1", code_url, medium, {"code": text.split()[1]})
                self.assert_paid(answer, code_url)
                again = self.pay("C1", code_url, medium, {})  # paid: the payer asking again gets the payment
                self.assertEqual(again.json()["transaction_id"], answer.json()["transaction_id"])
                self.assert_refused_paid(code_url)

    def assert_refused_paid(self, code_url):
        answer = self.pay("C2", code_url, "otp_card", {"code": "000000"})
        self.assertEqual((answer.status_code, answer.json()["code"]), (400, "ORDERPAID"), answer.text)

    def test_03_a_proof_for_another_payment_is_refused_and_moves_nothing(self):
        first, second = self.order(2_000), self.order(2_001)
        digest = self.lookup("C1", first)["payment_digest"]
        self.assert_refused(self.pay("C1", second, "u_shield", {"signature": self.sign("C1", "u_shield", digest)}),
                            403, "MEDIUM_PROOF_INVALID", second)
        self.assert_refused(self.pay("C1", second, "fingerprint",
                                     {"signature": self.sign("C2", "fingerprint", self.lookup("C1", second)
                                                             ["payment_digest"])}),
                            403, "MEDIUM_PROOF_INVALID", second)  # another customer's device
        challenge = self.lookup("C1", first)["ocra_challenge"]
        self.assert_refused(self.pay("C1", second, "password_device", {"code": self.ocra("C1", challenge)}),
                            403, "MEDIUM_PROOF_INVALID", second)
        sent = self.post("/customer/v1/sms-challenge", {"customer": "C1", "account": "C1:debit", "code_url": first})
        self.assertEqual(sent.status_code, 200, sent.text)
        code = json.loads(read(os.path.join(self.data, "gateway", "sms-outbox.jsonl")).splitlines()[-1])["text"]
        self.assert_refused(self.pay("C1", second, "sms", {"code": code.split()[1]}), 403, "MEDIUM_PROOF_INVALID",
                            second)
        # The channel certificate alone spends nothing: password_free needs the device's signature.
        self.assert_refused(self.pay("C1", second, "password_free", {}), 403, "MEDIUM_PROOF_INVALID", second)

    def test_04_a_totp_code_pays_once(self):
        code = self.totp("C2").now()
        first, second = self.order(3_000), self.order(3_000)
        self.assert_paid(self.pay("C2", first, "otp_card", {"code": code}), first)
        answer = self.pay("C2", second, "otp_card", {"code": code})
        self.assert_refused(answer, 403, "MEDIUM_PROOF_INVALID", second)
        self.assertIn("used already", answer.json()["message"])  # the ledger's refusal: the step is spent

    def test_05_limits_follow_the_proven_medium(self):
        # 6,000.00: above sms's 5,000.00 per payment, within the U-shield's.
        code_url = self.order(600_000)
        sent = self.post("/customer/v1/sms-challenge", {"customer": "C2", "account": "C2:debit", "code_url": code_url})
        self.assertEqual(sent.status_code, 200, sent.text)
        code = json.loads(read(os.path.join(self.data, "gateway", "sms-outbox.jsonl")).splitlines()[-1])["text"]
        self.assert_refused(self.pay("C2", code_url, "sms", {"code": code.split()[1]}), 403,
                            "LIMIT_PER_PAYMENT_EXCEEDED", code_url)
        digest = self.lookup("C2", code_url)["payment_digest"]
        self.assert_paid(self.pay("C2", code_url, "u_shield", {"signature": self.sign("C2", "u_shield", digest)}),
                         code_url)
        small = self.order(150_000)  # 1,500.00: above password_free's 1,000.00
        digest = self.lookup("C2", small)["payment_digest"]
        self.assert_refused(self.pay("C2", small, "password_free", {},
                                     device_signature=self.sign("C2", "password_free", digest)),
                            403, "LIMIT_PER_PAYMENT_EXCEEDED", small)

    def test_06_an_expired_order_is_refused(self):
        # Whole seconds in time_expire: at least expiry_s - 1 left when the order is made.
        code_url = self.order(1_000, expire_s=self.expiry_s)
        time.sleep(self.expiry_s + 1.5)
        digest = self.lookup("C2", code_url)["payment_digest"]
        answer = self.pay("C2", code_url, "fingerprint", {"signature": self.sign("C2", "fingerprint", digest)})
        self.assertEqual((answer.status_code, answer.json().get("code")), (403, "ORDER_EXPIRED"), answer.text)

    def test_07_five_failures_lock_the_medium(self):
        code_url = self.order(1_000)
        for attempt in range(5):
            answer = self.pay("C2", code_url, "password_device", {"code": "000000"})
            self.assertEqual((answer.status_code, answer.json()["code"]), (403, "MEDIUM_PROOF_INVALID"), answer.text)
        challenge = self.lookup("C2", code_url)["ocra_challenge"]
        self.assert_refused(self.pay("C2", code_url, "password_device", {"code": self.ocra("C2", challenge)}), 403,
                            "MEDIUM_LOCKED", code_url)

    def issue_code(self, customer, medium):
        """A payment code, its medium proven over the documented digest (computed here, not asked for)."""
        timestamp = int(time.time())
        digest = hashlib.sha256(f"ledger-payment-code-v1\n{customer}\n{customer}:debit\n{timestamp}\n".encode()).hexdigest()
        body = {"customer": customer, "account": f"{customer}:debit", "funding": "own_account", "medium": medium,
                "timestamp": timestamp, "proof": {}}
        if medium in ("u_shield", "fingerprint"):
            body["proof"] = {"signature": self.sign(customer, medium, digest)}
        elif medium == "password_free":
            body["device_signature"] = self.sign(customer, medium, digest)
        elif medium == "password_device":
            body["proof"] = {"code": self.ocra(customer, f"{int(digest[:16], 16) % 10**8:08d}")}
        answer = self.post("/customer/v1/payment-codes", body)
        self.assertEqual(answer.status_code, 200, answer.text)
        code = answer.json()
        self.assertRegex(code["auth_code"], r"^62[0-9]{16}$")
        self.assertLessEqual(code["expires_at"] - time.time(), 61)
        return code, body

    def codepay(self, order_no, amount, auth_code):
        from wechatpayv3 import WeChatPayType
        return self.m1.pay(description="shop", out_trade_no=order_no, amount={"total": amount},
                           payer={"auth_code": auth_code}, scene_info={"store_info": {"out_id": "S1"}},
                           pay_type=WeChatPayType.CODEPAY)

    def test_08_a_payment_code_pays_at_once_within_its_mediums_limit(self):
        code, request = self.issue_code("C1", "fingerprint")
        status, text = self.codepay("P1", 30_000, code["auth_code"])
        self.assertEqual(status, 200, text)
        paid = json.loads(text)
        self.assertEqual((paid["trade_state"], paid["trade_type"], paid["amount"]["total"]),
                         ("SUCCESS", "MICROPAY", 30_000))
        again = self.codepay("P1", 30_000, code["auth_code"])  # the POS retries: the same payment
        self.assertEqual((again[0], json.loads(again[1])["transaction_id"]), (200, paid["transaction_id"]))
        used = self.codepay("P2", 100, code["auth_code"])
        self.assertEqual((used[0], json.loads(used[1])["code"]), (400, "AUTH_CODE_INVALID"), used[1])
        self.assertEqual(self.m1.query(out_trade_no="P2")[0], 404)
        forged = self.codepay("P3", 100, "62" + "".join(secrets.choice("0123456789") for _ in range(16)))
        self.assertEqual((forged[0], json.loads(forged[1])["code"]), (400, "AUTH_CODE_INVALID"), forged[1])
        replayed = self.post("/customer/v1/payment-codes", request)  # the same proof issues no second code
        self.assertEqual((replayed.status_code, replayed.json()["code"]), (403, "MEDIUM_PROOF_INVALID"),
                         replayed.text)
        stale = dict(request, timestamp=request["timestamp"] - 120)
        self.assertEqual(self.post("/customer/v1/payment-codes", stale).status_code, 400)

    def test_09_above_its_mediums_limit_the_customer_confirms_the_payment(self):
        code, _ = self.issue_code("C1", "password_free")
        status, text = self.codepay("P4", 200_000, code["auth_code"])  # 2,000.00: above password_free's 1,000.00
        self.assertEqual((status, json.loads(text).get("trade_state")), (202, "USERPAYING"), text)
        self.assertEqual(json.loads(self.m1.query(out_trade_no="P4")[1])["trade_state"], "USERPAYING")
        path = f"/customer/v1/payments/{code['payment_id']}/confirm"
        other = self.post(path, {"customer": "C2", "account": "C2:debit", "medium": "u_shield", "proof": {}})
        self.assertEqual((other.status_code, other.json()["code"]), (404, "PAYMENT_NOT_FOUND"), other.text)
        looked_up = self.post("/customer/v1/orders/lookup",
                              {"customer": "C1", "account": "C1:debit", "payment_id": code["payment_id"]})
        self.assertEqual(looked_up.status_code, 200, looked_up.text)
        self.assertEqual((looked_up.json()["out_trade_no"], looked_up.json()["amount"]["total"]), ("P4", 200_000))
        digest = looked_up.json()["payment_digest"]
        weak = self.post(path, {"customer": "C1", "account": "C1:debit", "medium": "password_free", "proof": {},
                                "device_signature": self.sign("C1", "password_free", digest)})
        self.assertEqual((weak.status_code, weak.json()["code"]), (403, "LIMIT_PER_PAYMENT_EXCEEDED"), weak.text)
        confirmed = self.post(path, {"customer": "C1", "account": "C1:debit", "medium": "u_shield",
                                     "proof": {"signature": self.sign("C1", "u_shield", digest)}})
        self.assertEqual(confirmed.status_code, 200, confirmed.text)
        code_status, text = self.m1.query(out_trade_no="P4")
        self.assertEqual((code_status, json.loads(text)["trade_state"]), (200, "SUCCESS"), text)
        self.assertEqual(json.loads(text)["transaction_id"], confirmed.json()["transaction_id"])
        again = self.codepay("P4", 200_000, code["auth_code"])
        self.assertEqual((again[0], json.loads(again[1])["trade_state"]), (200, "SUCCESS"), again[1])

    def test_10_a_waiting_codepay_the_merchant_reversed_is_never_paid(self):
        code, _ = self.issue_code("C2", "password_free")
        self.assertEqual(self.codepay("P5", 200_000, code["auth_code"])[0], 202)  # above password_free's limit
        status, text = self.m1.codepay_reverse(out_trade_no="P5")
        self.assertEqual(status, 200, text)
        path = f"/customer/v1/payments/{code['payment_id']}/confirm"
        digest = self.post("/customer/v1/orders/lookup", {"customer": "C2", "account": "C2:debit",
                                                          "payment_id": code["payment_id"]}).json()["payment_digest"]
        late = self.post(path, {"customer": "C2", "account": "C2:debit", "medium": "u_shield",
                                "proof": {"signature": self.sign("C2", "u_shield", digest)}})
        self.assertEqual((late.status_code, late.json()["code"]), (403, "ORDER_CLOSED"), late.text)

    def test_11_h5_and_app_orders_are_paid_by_their_own_links(self):
        from wechatpayv3 import WeChatPayType
        scene = {"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}}
        status, text = self.m1.pay(description="h5", out_trade_no="H1", amount={"total": 4_000}, scene_info=scene,
                                   pay_type=WeChatPayType.H5)
        self.assertEqual(status, 200, text)
        h5_url = json.loads(text)["h5_url"]
        status, text = self.m1.pay(description="app", out_trade_no="A1", amount={"total": 5_000},
                                   pay_type=WeChatPayType.APP)
        self.assertEqual(status, 200, text)
        prepay_id = json.loads(text)["prepay_id"]
        # A link names only an order of its own kind.
        wrong = self.post("/customer/v1/orders/lookup", {"customer": "C2", "account": "C2:debit",
                                                         "code_url": h5_url.replace("ledger://h5/", "ledger://pay/")})
        self.assertEqual(wrong.status_code, 404, wrong.text)
        for field, link, order_no, trade_type in (("h5_url", h5_url, "H1", "MWEB"),
                                                  ("prepay_id", prepay_id, "A1", "APP")):
            with self.subTest(field=field):
                looked_up = self.post("/customer/v1/orders/lookup",
                                      {"customer": "C2", "account": "C2:debit", field: link})
                self.assertEqual(looked_up.status_code, 200, looked_up.text)
                digest = looked_up.json()["payment_digest"]
                answer = self.post("/customer/v1/orders/pay", {
                    "customer": "C2", "account": "C2:debit", "funding": "own_account", "medium": "fingerprint",
                    "proof": {"signature": self.sign("C2", "fingerprint", digest)}, field: link})
                self.assertEqual(answer.status_code, 200, answer.text)
                status, text = self.m1.query(out_trade_no=order_no)
                self.assertEqual((json.loads(text)["trade_state"], json.loads(text)["trade_type"]),
                                 ("SUCCESS", trade_type), text)

    def test_12_findings_of_an_attackers_review(self):
        import requests
        code_url = self.order(1_500)
        # A merchant's certificate chains to the gateway's CA too, but its holder is no bank channel.
        kit = os.path.join(self.scratch.name, "kit-M1")
        answer = requests.post(self.gateway.url + "/customer/v1/orders/lookup", timeout=30,
                               cert=(os.path.join(kit, "apiclient_cert.pem"), os.path.join(kit, "apiclient_key.pem")),
                               json={"customer": "C2", "account": "C2:debit", "code_url": code_url})
        self.assertEqual((answer.status_code, answer.json()["code"]), (401, "CHANNEL_CERTIFICATE_REQUIRED"))
        # A refused attempt does not stand in for the next with the same proof (an RSA signature of the same
        # digest is the same bytes again).
        signature = self.sign("C2", "u_shield", self.lookup("C2", code_url)["payment_digest"])
        refused = self.pay("C2", code_url, "u_shield", {"signature": signature}, points=1_000_000)
        self.assertEqual(refused.status_code, 403, refused.text)
        self.assert_paid(self.pay("C2", code_url, "u_shield", {"signature": signature}), code_url)
        # The SMS outbox is bounded: at most 5 messages to a customer in a code window.
        outbox = os.path.join(self.data, "gateway", "sms-outbox.jsonl")
        before = len(read(outbox).splitlines())
        statuses = [self.post("/customer/v1/sms-challenge", {"customer": "C2", "account": "C2:debit",
                                                             "code_url": self.order(100)}).status_code
                    for _ in range(6)]
        self.assertIn(429, statuses)
        self.assertLessEqual(len(read(outbox).splitlines()) - before, 5)

    def test_99_the_ledger_after_the_gateway_stopped(self):
        self.assertEqual(self.gateway.stop(), 0)
        self.stop_ledger()
        events = self.ledger_events()
        used = [e["payload"] for e in events if e["type"] == "MediumProofUsed"]
        self.assertEqual(sorted({u["medium"] for u in used}), sorted(MEDIA))
        failed = [e["payload"] for e in events if e["type"] == "MediumProofFailed"]
        self.assertTrue(any(f["locked"] and f["medium"] == "password_device" and f["failures"] == 5 for f in failed))
        # No secret reached an event: the TOTP secrets, OCRA keys, private keys, the SMS codes sent.
        history = "\n".join(json.dumps(e) for e in events)
        for (customer, medium), folder in self.kits.items():
            for name in ("totp_secret", "ocra_key", "u_shield_key.pem", "device_key.pem"):
                if os.path.exists(os.path.join(folder, name)):
                    secret = read(os.path.join(folder, name)).strip()
                    marker = secret.splitlines()[1] if secret.startswith("-----BEGIN") else secret
                    self.assertNotIn(marker, history, f"{customer} {medium} {name}")
        for line in read(os.path.join(self.data, "gateway", "sms-outbox.jsonl")).splitlines():
            self.assertNotIn('"' + json.loads(line)["text"].split()[1], history)
        # C1 paid the six 500.00 orders and two codepays (300.00, and 2,000.00 confirmed by U-shield); C2 an
        # OTP-card 30.00, the U-shield 6,000.00 and the H5 and app orders (its reversed codepay moved nothing).
        for account, expected in (("C1:debit", 1_000_000 - 6 * 50_000 - 30_000 - 200_000),
                                  ("C2:debit", 1_000_000 - 3_000 - 600_000 - 4_000 - 5_000 - 1_500)):
            self.assertEqual(self.balance_minor(account), expected - self.extra_paid.get(account, 0), account)
        # Enrolled again, the locked password device is open again.
        self.start_ledger(None)
        sdk.run_ledger("customer-enroll", "--data", self.data, "--customer", "C2", "--medium", "password_device",
                       "--out", os.path.join(self.scratch.name, "C2-password_device-new"), *self.operator_args)
        unknown = sdk.run_ledger("customer-enroll", "--data", self.data, "--customer", "C9", "--medium", "otp_card",
                                 "--out", os.path.join(self.scratch.name, "C9-otp"), *self.operator_args,
                                 check=False)
        self.assertEqual(unknown.returncode, 2, unknown.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.scratch.name, "C9-otp")))


if __name__ == "__main__":
    sdk.main(__doc__, ("oath", "pyotp", "wechatpayv3"))
