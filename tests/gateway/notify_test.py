"""`ledger gateway`'s notifications, received by a merchant's HTTPS server and read by the real WeChat Pay v3
SDK's `callback()` (it verifies the platform's signature and decrypts the resource with the APIv3 key).

    notify_test.py LEDGER_BINARY SDK_PYTHON

The merchant's server is Python's own HTTPS server with a certificate for 127.0.0.1 that `openssl` made, signed
by a CA the gateway is told to trust (DIR/gateway/notify-ca.pem). The gateway runs with a fast retry schedule
(1 s, 1 s, 1 s) instead of WeChat's (15 s … 6 h). Exits 77 (skipped, saying why) without the SDK venv.
"""
import base64
import http.server
import json
import os
import queue
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_sdk_test as sdk  # noqa: E402

WAIT_S = 30  # for a notification the gateway should send within a pass or a retry or two


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_server_certificate(folder):
    """A CA, and a server certificate for IP 127.0.0.1 it signed, by the openssl command line."""
    ca_key, ca_cert = os.path.join(folder, "ca.key"), os.path.join(folder, "ca.pem")
    key, csr, cert = (os.path.join(folder, name) for name in ("server.key", "server.csr", "server.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert, "-days", "2",
            "-subj", "/CN=merchant test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    extensions = os.path.join(folder, "san.cnf")
    with open(extensions, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", extensions)
    return ca_cert, cert, key


class MerchantServer:
    """The merchant's notify_url: records every POST; answers 500 to the first `failures[path]` of a path."""

    def __init__(self, cert, key):
        self.received = queue.Queue()
        self.failures = {}
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.lock:
                    left = server.failures.get(self.path, 0)
                    server.failures[self.path] = max(0, left - 1)
                server.received.put((self.path, dict(self.headers), body.decode(), time.time()))
                self.send_response(500 if left > 0 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def next(self, path, timeout=WAIT_S):
        """The next POST to `path` (others seen meanwhile are kept for later)."""
        deadline = time.time() + timeout
        skipped = []
        try:
            while True:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no notification to {path} within {timeout} s")
                try:
                    item = self.received.get(timeout=left)
                except queue.Empty:
                    raise AssertionError(f"no notification to {path} within {timeout} s")
                if item[0] == path:
                    return item
                skipped.append(item)
        finally:
            for item in skipped:
                self.received.put(item)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class NotificationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory(prefix="gateway-notify-")
        cls.data = os.path.join(cls.scratch.name, "data")
        path = os.path.join(cls.scratch.name, "setup.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(c) + "\n" for c in sdk.COMMANDS))
        sdk.run_ledger("submit", "--data", cls.data, path)
        cls.kit_dir = os.path.join(cls.scratch.name, "kit-M1")
        sdk.run_ledger("merchant-keys", "--data", cls.data, "--merchant", "M1", "--out", cls.kit_dir)
        cls.u_shield = os.path.join(cls.scratch.name, "C1-u_shield")
        sdk.run_ledger("customer-enroll", "--data", cls.data, "--customer", "C1", "--medium", "u_shield",
                       "--out", cls.u_shield)
        ca_cert, cert, key = make_server_certificate(cls.scratch.name)
        with open(ca_cert) as source, open(os.path.join(cls.data, "gateway", "notify-ca.pem"), "w") as target:
            target.write(source.read())
        cls.server = MerchantServer(cert, key)
        cls.kit = sdk.read_kit(cls.kit_dir)
        os.environ["REQUESTS_CA_BUNDLE"] = os.path.join(cls.kit_dir, "ca.pem")
        cls.start_gateway()

    @classmethod
    def start_gateway(cls):
        cls.gateway = sdk.Gateway(cls.data, os.path.join(cls.scratch.name, "gateway.log"), sdk.free_port(),
                                  ["--notify-retry-seconds", "1,1,1"])
        cls.m1 = sdk.merchant_client(cls.kit, cls.gateway.url, "M1")

    @classmethod
    def tearDownClass(cls):
        if cls.gateway.process.poll() is None:
            cls.gateway.stop()
        cls.server.stop()
        cls.scratch.cleanup()

    def paid_order(self, order_no, amount, notify_path):
        """A native order with its notify_url, paid by C1 with the u_shield through the customer API."""
        import requests
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding
        code, text = self.m1.pay(description="ticket", out_trade_no=order_no, amount={"total": amount},
                                 notify_url=self.server.url(notify_path))
        self.assertEqual(code, 200, text)
        code_url = json.loads(text)["code_url"]
        tls = os.path.join(self.data, "gateway", "tls")
        channel = (os.path.join(tls, "channel-client.pem"), os.path.join(tls, "channel-client.key"))
        body = {"customer": "C1", "account": "C1:debit", "code_url": code_url}
        looked_up = requests.post(self.gateway.url + "/customer/v1/orders/lookup", json=body, cert=channel, timeout=30)
        self.assertEqual(looked_up.status_code, 200, looked_up.text)
        with open(os.path.join(self.u_shield, "u_shield_key.pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        signature = key.sign(looked_up.json()["payment_digest"].encode(), padding.PKCS1v15(), hashes.SHA256())
        paid = requests.post(self.gateway.url + "/customer/v1/orders/pay", cert=channel, timeout=30,
                             json={**body, "funding": "own_account", "medium": "u_shield",
                                   "proof": {"signature": base64.b64encode(signature).decode()}})
        self.assertEqual(paid.status_code, 200, paid.text)
        return paid.json()["transaction_id"]

    def test_01_a_payment_is_notified_signed_and_encrypted_for_the_sdk(self):
        transaction_id = self.paid_order("P1", 12_300, "/notify/P1")
        _, headers, body, _ = self.server.next("/notify/P1")
        notification = self.m1.callback(headers, body)  # the SDK verifies the signature and decrypts
        self.assertIsNotNone(notification, "the SDK refused the notification")
        self.assertEqual((notification["event_type"], notification["resource_type"]),
                         ("TRANSACTION.SUCCESS", "encrypt-resource"))
        resource = notification["resource"]
        self.assertEqual((resource["mchid"], resource["out_trade_no"], resource["transaction_id"]),
                         ("M1", "P1", transaction_id))
        self.assertEqual((resource["trade_state"], resource["amount"]["total"]), ("SUCCESS", 12_300))
        # The signature covers the body: one changed byte and the SDK refuses it.
        self.assertIsNone(self.m1.callback(headers, body.replace("TRANSACTION", "TRANSACTIOM")))
        # Only the merchant's APIv3 key opens the resource.
        from wechatpayv3.utils import aes_decrypt
        sealed = json.loads(body)["resource"]
        # Nothing of the payment in clear: no field name of it ('_' is not in base64's alphabet), and its order
        # number nowhere but by chance inside the random parts (ciphertext, nonce, id).
        self.assertNotIn("out_trade_no", body)
        clear = {k: v for k, v in json.loads(body).items() if k not in ("resource", "id")}
        clear["resource"] = {k: v for k, v in sealed.items() if k not in ("ciphertext", "nonce")}
        self.assertNotIn("P1", json.dumps(clear))
        self.assertIsNone(aes_decrypt(sealed["nonce"], sealed["ciphertext"], sealed["associated_data"], "0" * 32))

    def test_02_a_failed_delivery_is_retried_on_the_schedule_with_the_same_id(self):
        self.server.failures["/notify/P2"] = 2
        self.paid_order("P2", 2_000, "/notify/P2")
        attempts = [self.server.next("/notify/P2") for _ in range(3)]
        ids = {json.loads(body)["id"] for _, _, body, _ in attempts}
        self.assertEqual(len(ids), 1, "every attempt carries the same notification id")
        gaps = [b[3] - a[3] for a, b in zip(attempts, attempts[1:])]
        self.assertTrue(all(gap >= 0.9 for gap in gaps), f"retried before its 1 s wait: {gaps}")
        self.assertIsNotNone(self.m1.callback(attempts[-1][1], attempts[-1][2]))
        time.sleep(2.5)  # taken: nothing more comes
        with self.assertRaises(AssertionError):
            self.server.next("/notify/P2", timeout=0.5)

    def test_03_a_refund_is_notified(self):
        self.paid_order("P3", 10_000, "/notify/P3")
        self.server.next("/notify/P3")
        code, text = self.m1.refund(out_refund_no="R3", amount={"refund": 4_000, "total": 10_000, "currency": "CNY"},
                                    out_trade_no="P3", notify_url=self.server.url("/notify/R3"))
        self.assertEqual(code, 200, text)
        _, headers, body, _ = self.server.next("/notify/R3")
        notification = self.m1.callback(headers, body)
        self.assertIsNotNone(notification)
        self.assertEqual(notification["event_type"], "REFUND.SUCCESS")
        resource = notification["resource"]
        self.assertEqual((resource["out_trade_no"], resource["out_refund_no"], resource["refund_status"]),
                         ("P3", "R3", "SUCCESS"))
        self.assertEqual((resource["amount"]["refund"], resource["amount"]["total"]), (4_000, 10_000))

    def test_04_a_notify_url_must_be_https(self):
        for url in ("http://127.0.0.1:1/notify", "https://", "https://host/a b", "https://" + "h" * 300):
            code, text = self.m1.pay(description="ticket", out_trade_no="P4", amount={"total": 100}, notify_url=url)
            self.assertEqual(code, 400, f"{url}: {text}")
            self.assertEqual(json.loads(text)["code"], "PARAM_ERROR", text)
        self.assertEqual(self.m1.query(out_trade_no="P4")[0], 404)  # nothing was created

    def test_05_a_pending_delivery_survives_a_restart(self):
        self.server.failures["/notify/P5"] = 1_000  # the merchant is down
        self.paid_order("P5", 3_000, "/notify/P5")
        self.server.next("/notify/P5")
        self.assertEqual(self.gateway.stop(), 0)
        with open(os.path.join(self.data, "gateway", "notifier.json")) as f:
            state = json.load(f)
        self.assertEqual([(d["order_no"], d["kind"]) for d in state["deliveries"]], [("P5", "transaction")])
        self.assertEqual(os.stat(os.path.join(self.data, "gateway", "notifier.json")).st_mode & 0o777, 0o600)
        self.assertNotIn(self.kit["apiv3_key"].strip(), json.dumps(state))
        while not self.server.received.empty():
            self.server.received.get()
        self.server.failures["/notify/P5"] = 0  # the merchant is back
        self.__class__.start_gateway()
        _, headers, body, _ = self.server.next("/notify/P5")
        self.assertEqual(self.m1.callback(headers, body)["resource"]["out_trade_no"], "P5")

    def test_99_no_secret_in_events_or_log_and_nothing_else_was_sent(self):
        self.assertEqual(self.gateway.stop(), 0)
        apiv3_key = self.kit["apiv3_key"].strip()
        events = sdk.run_ledger("events", "--data", self.data, "--json").stdout
        self.assertIn(self.server.url("/notify/P1"), events)  # the order's notify_url is recorded
        with open(os.path.join(self.scratch.name, "gateway.log")) as f:
            log = f.read()
        for text in (events, log):
            self.assertNotIn(apiv3_key, text)
        while not self.server.received.empty():
            path = self.server.received.get()[0]
            self.assertIn(path, ("/notify/P2", "/notify/P5"), "a notification nobody asked for")

    def test_99z_a_damaged_state_or_one_ahead_of_the_ledger_is_refused(self):
        state_path = os.path.join(self.data, "gateway", "notifier.json")
        with open(state_path) as f:
            good = f.read()
        ahead = json.loads(good)
        ahead["through"] += 1_000  # as if the store were restored from an older backup
        no_url = json.loads(good)
        no_url["deliveries"] = [{"sequence": 1, "kind": "transaction", "merchant": "M1", "order_no": "P1",
                                 "refund_no": "", "attempts": 0, "due_s": 0}]
        damaged = {"ahead of the ledger": json.dumps(ahead), "not JSON": good[:-5],
                   "a delivery without its url": json.dumps(no_url)}
        try:
            for what, text in damaged.items():
                with open(state_path, "w") as f:
                    f.write(text)
                done = subprocess.run([sdk.LEDGER, "gateway", "--data", self.data, "--listen", "127.0.0.1:0"],
                                      capture_output=True, text=True, timeout=60)
                self.assertEqual(done.returncode, 1, f"{what}: {done.stdout} {done.stderr}")
                self.assertIn("notifier.json", done.stderr, what)
                self.assertNotIn("gateway=", done.stdout, what)
        finally:
            with open(state_path, "w") as f:
                f.write(good)


if __name__ == "__main__":
    sdk.main(__doc__)
