"""Real servers on 127.0.0.1 for the upload and alert tests: an S3 API (moto's server mode,
with IAM checks on, so wrong credentials are refused like on AWS), an SMTP server (aiosmtpd)
and an HTTP webhook receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy.net import free_port, wait_for_port

MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
BUCKET = "pipeline-results"


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str
    process: subprocess.Popen

    def connection(self, secret: str | None = None) -> str:
        """An Airflow connection (JSON, for ``AIRFLOW_CONN_<ID>``) to this server."""
        return json.dumps({
            "conn_type": "aws", "login": self.key_id, "password": secret or self.secret,
            "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        })

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        s3 = self.client()
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """moto_server on a free port of 127.0.0.1; an IAM user allowed s3:*, and a bucket.

    IAM checks start after the first 4 requests (``INITIAL_NO_AUTH_ACTION_COUNT``): the ones
    that create the user, its key, its policy and the bucket.
    """
    import boto3

    port = free_port()
    process = subprocess.Popen(
        [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="uploader")
        key = iam.create_access_key(UserName="uploader")["AccessKey"]
        iam.put_user_policy(UserName="uploader", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }))
        server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], process)
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@dataclass
class Inbox:
    """What the local SMTP server received."""

    port: int
    messages: list[Message] = field(default_factory=list)

    def connection(self) -> str:
        return json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@example.org",
                      "retry_limit": 1, "timeout": 10},
        })


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    inbox = Inbox(free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = message_from_bytes(envelope.content)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            inbox.messages.append(message)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Webhook:
    """What the local webhook receiver got: (path, JSON body) per POST."""

    port: int
    posts: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/not-a-real-secret"

    def connection(self) -> str:
        return json.dumps({"conn_type": "http", "host": self.url})


@pytest.fixture
def webhook_server():
    hook = Webhook(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.posts.append((self.path, json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
