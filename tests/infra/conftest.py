"""Fixtures for the infrastructure tests: one in-process synth per configuration, one real
`cdk synth` through the CLI per session, a moto server and local HTTP servers for the smoke
tool. No AWS account, no network, no Docker."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
# Quiet jsii's Node end-of-life banner (it is only a warning).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "function"), str(ROOT)])
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def site_build() -> Path:
    """build/site, as `make site` makes it (the BucketDeployment's source)."""
    if not (SITE / "index.html").is_file():
        subprocess.run(["make", "--no-print-directory", "site"], cwd=ROOT, check=True)
    assert (SITE / "index.html").is_file(), "make site did not produce build/site/index.html"
    return SITE


@pytest.fixture(scope="session")
def synth(site_build, tmp_path_factory):
    """synth(**context) -> (stack, template dict, outdir), cached per context."""
    import aws_cdk as cdk

    from infra.app import build

    cache: dict[tuple, tuple] = {}
    flags = json.loads((ROOT / "cdk.json").read_text()).get("context", {})

    def make(**context):
        key = tuple(sorted(context.items()))
        if key not in cache:
            outdir = tmp_path_factory.mktemp("synth")
            # cdk.json's context (feature flags) as the CLI passes it, then the test's knobs.
            app = cdk.App(outdir=str(outdir), context={**flags, **context})
            stack = build(app)
            assembly = app.synth()
            template = assembly.get_stack_by_name(stack.stack_name).template
            cache[key] = (stack, template, outdir)
        return cache[key]

    yield make
    for _, _, outdir in cache.values():
        shutil.rmtree(outdir, ignore_errors=True)  # ~100 MB of staged assets each


@pytest.fixture(scope="session")
def cli_synth(site_build, tmp_path_factory):
    """The real `npx cdk synth` (the CLI pinned in package.json), into its own folder."""
    if not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        subprocess.run(["make", "--no-print-directory", "node_modules/.installed"], cwd=ROOT)
    if not (ROOT / ".venv-cdk" / ".installed").exists():  # cdk.json runs the app with it
        subprocess.run(["make", "--no-print-directory", ".venv-cdk/.installed"], cwd=ROOT)
    outdir = tmp_path_factory.mktemp("cdk.out")
    started = time.monotonic()
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(outdir)],
        cwd=ROOT,
        # No AWS credentials and no Docker: synth needs neither.
        env=_env(
            CDK_DISABLE_VERSION_CHECK="1",
            CDK_DISABLE_CLI_TELEMETRY="true",
            CI="true",
            AWS_EC2_METADATA_DISABLED="true",
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"cdk synth failed:\n{result.stdout}\n{result.stderr}"
    print(f"cdk synth through the CLI: {time.monotonic() - started:.1f} s")
    yield outdir
    shutil.rmtree(outdir, ignore_errors=True)  # ~100 MB of staged assets (the model)


# --- the smoke tool's world: moto's CloudFormation and local HTTP servers ---------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer in {timeout} s") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def moto_server():
    """moto in server mode, so that a subprocess (make smoke) reaches it via AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def aws_env(moto_server) -> dict[str, str]:
    """Environment for anything that talks to the mocked AWS: fake credentials, no proxy."""
    env = _env(
        AWS_ENDPOINT_URL=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


@pytest.fixture(scope="session")
def make_stack(aws_env):
    """make_stack(name, outputs) creates a stack in moto's CloudFormation with those outputs."""
    import boto3

    client = boto3.client(
        "cloudformation",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def create(name: str, outputs: dict[str, str]) -> str:
        template = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        client.create_stack(StackName=name, TemplateBody=json.dumps(template))
        return name

    return create


def _serve_app(tmp_path_factory, **env: str):
    """The real app (emotion.app) under uvicorn, as `make run` serves it; yields its URL."""
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    log = tmp_path_factory.mktemp("server") / "uvicorn.log"  # a file: a pipe could fill up
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(str(uvicorn), "emotion.app:create_app", "--factory", "--no-access-log"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=ROOT,
            env=_env(**env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url + "health", timeout=120)
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"local server did not start:\n{log.read_text()}") from None
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def local_server(site_build, tmp_path_factory):
    """The page and the API as CloudFront serves them."""
    yield from _serve_app(tmp_path_factory, EMOTION_STATIC_DIR=str(site_build))


@pytest.fixture(scope="session")
def local_api_endpoint(tmp_path_factory):
    """The API as its own execute-api endpoint: the stack's origin secret set, no CloudFront
    to add it."""
    yield from _serve_app(tmp_path_factory, EMOTION_ORIGIN_SECRET="deployed-secret")


@pytest.fixture
def stub_server():
    """stub_server(handler) -> URL of a tiny threaded HTTP server in this process."""
    import http.server
    import threading

    servers = []

    def start(handler_class) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def smoke(aws_env):
    """smoke(stack, *args, env=None, via_make=False) -> CompletedProcess of the real tool."""

    def run(stack: str, *args: str, env: dict[str, str] | None = None, via_make: bool = False):
        if via_make:
            # -o: take the installed .venv as up to date (the suite already runs inside it).
            command = ["make", "--no-print-directory", "-o", ".venv/.dev", "smoke",
                       f"STACK={stack}"]  # fmt: skip
        else:
            command = [sys.executable, "-m", "infra.smoke", "--stack", stack, *args]
        return subprocess.run(
            command, cwd=ROOT, env=env or aws_env, capture_output=True, text=True, timeout=300
        )

    return run
