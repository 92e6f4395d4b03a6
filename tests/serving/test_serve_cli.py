"""`seqrec serve` end to end: a real server process on a free local port, queried over
HTTP; SIGHUP reloads the model directory; start-up errors are one-line and exit 2."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from seqrec.cli import main

from .conftest import free_port

pytest.importorskip("uvicorn", reason="the 'serve' extra (uvicorn) is not installed")


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    return False


def start(args, env=None):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqrec.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: http("GET", base + "/readyz")[0] == 200 or proc.poll() is not None):
        proc.kill()
        pytest.fail("server did not become ready")
    if proc.poll() is not None:
        pytest.fail(f"server exited: {proc.stdout.read().decode()}")
    return proc, base


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_query_and_sighup_reload(model_dirs):
    proc, base = start(["--model", str(model_dirs["gru4rec"])])
    try:
        status, body = http("POST", base + "/v1/sessions/u1/events", {"item": "a", "k": 3})
        assert status == 200 and len(body["items"]) == 3 and body["session_length"] == 1
        status, body = http("GET", base + "/v1/sessions/u1/recommendations?k=3")
        assert status == 200 and body["session_length"] == 1
        assert http("GET", base + "/v1/model")[1]["reloads"] == 0
        proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: http("GET", base + "/v1/model")[1]["reloads"] == 1, 30)
        status, body = http("POST", base + "/v1/sessions/u1/events", {"item": "b"})
        assert status == 200 and body["session_length"] == 2  # same model: state kept
    finally:
        stop(proc)


def test_two_workers_share_sessions_in_redis(model_dirs, redis_url):
    proc, base = start(
        [
            "--model",
            str(model_dirs["session-pop"]),
            "--workers",
            "2",
            "--store",
            redis_url,
            "--api-key-env",
            "SEQREC_CLI_TEST_KEY",
        ],
        env={"SEQREC_CLI_TEST_KEY": "k"},
    )
    auth = {"X-API-Key": "k"}
    try:
        for n in range(1, 7):  # requests land on either worker; the session is shared
            status, body = http("POST", base + "/v1/sessions/w/events", {"item": "c"}, auth)
            assert status == 200 and body["session_length"] == n
        assert http("POST", base + "/v1/sessions/w/events", {"item": "c"})[0] == 401
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        route = 'route="/v1/sessions/{session_id}/events"'
        assert f'seqrec_http_requests_total{{method="POST",{route},status="200"}} 6.0' in text
    finally:
        stop(proc)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--workers", "2"], "needs a shared session store"),
        (["--api-key-env", "SEQREC_SURELY_UNSET"], "SEQREC_SURELY_UNSET"),
        (["--store", "mongodb://x"], "unknown store"),
    ],
)
def test_start_up_errors(model_dirs, capsys, args, needle):
    code = main(["serve", "--model", str(model_dirs["pop"]), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err


def test_missing_model_dir(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "none")]) == 2
    assert "model directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_port_out_of_range(model_dirs, capsys, port):
    code = main(["serve", "--model", str(model_dirs["pop"]), "--port", port])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --port must be a TCP port between 0 and 65535")


def raw_http(base, request: bytes):
    """Send raw bytes to the server; (status, headers text, body bytes)."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1").lower(), body


def get(url: str) -> bytes:
    return f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def test_requests_uvicorn_rejects_get_json_errors(model_dirs):
    """A URL over 64 KiB (a 100 KB session id) and an unparsable request never reach
    the app; `seqrec serve` still answers them with the JSON error body."""
    proc, base = start(["--model", str(model_dirs["pop"])])
    try:
        url = f"/v1/sessions/{'s' * 100_000}/recommendations"
        status, head, body = raw_http(base, get(url))
        assert status == 414 and "content-type: application/json" in head
        assert json.loads(body)["error"]["code"] == "url_too_long"
        status, head, body = raw_http(base, b"NOT HTTP AT ALL\r\n\r\n")
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_http_request"
        url = f"/v1/sessions/{'s' * 20_000}/recommendations"  # reaches the app's limit
        status, head, body = raw_http(base, get(url))
        assert status == 422 and json.loads(body)["error"]["code"] == "session_id_too_long"
    finally:
        stop(proc)
