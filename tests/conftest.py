"""Shared test set-up: headless Qt, few threads, deterministic torch."""

import http.server
import os
import socket
import threading
from pathlib import Path

if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    # Headless, on a 1600×1000 screen like the screenshots' Xvfb: Qt's offscreen default of
    # 800×600 is smaller than the main window's minimum size with all its tabs.
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={Path(__file__).with_name('offscreen.json')}"

import cnnexplorer  # noqa: E402,F401 - first, as in the app: it sets the OpenMP wait policy before torch loads
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _own_index_cache(tmp_path, monkeypatch):
    """Each test keeps its dataset indexes in a cache of its own, never the user's."""
    monkeypatch.setenv("CNNEXPLORER_CACHE", str(tmp_path / "cnnexplorer-cache"))


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """A temporary torch hub folder (TORCH_HOME is restored by monkeypatch)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch" / "hub"
    return hub


class Server:
    """Serves ``files`` by name; ``drop`` names files sent only half, then the connection closes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append(name)
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data[: len(data) // 2] if name in server.drop else data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def closed_port_url(name: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


