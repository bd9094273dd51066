# ---
# cmd: ["snapbuild", "build", "examples/web_app.py"]
# ---

# # A small web service
#
# This file is written as for Modal: it defines the image of a web service
# with `modal.Image`, and a Modal App whose function serves HTTP. snapbuild
# builds the image locally, offline, from the file as it is:
#
# ```sh
# SNAPBUILD_EXAMPLE_INDEX=http://127.0.0.1:8000/simple snapbuild build examples/web_app.py
# snapbuild run web_image -- sh -c 'curl --version | head -1; python -c "import snapapp; print(snapapp.VALUE)"; echo "$GREETING from $(pwd)"'
# ```
#
# The Python package comes from a package index you serve yourself (no PyPI):
# a PEP 503 "simple" index holding a pure-Python wheel of `snapapp`, whose
# module has a `VALUE` string. Its URL is `$SNAPBUILD_EXAMPLE_INDEX`,
# by default http://127.0.0.1:8000/simple (for example
# `python3 -m http.server 8000` in a directory with `simple/snapapp/index.html`
# linking the wheel).

import os

import modal

INDEX_URL = os.environ.get("SNAPBUILD_EXAMPLE_INDEX", "http://127.0.0.1:8000/simple")

# ## The image
#
# A Debian image with Python 3.11, `curl` for health checks, the app's
# dependency from the local index, its settings in the environment and `/app`
# as the working directory.

web_image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("curl")
    .pip_install("snapapp", index_url=INDEX_URL)
    .env({"GREETING": "hello", "PORT": "8000"})
    .workdir("/app")
)

app = modal.App("example-web-app", image=web_image)


def greeting() -> str:
    import snapapp

    return f"{os.environ['GREETING']} from snapapp {snapapp.VALUE}"


# ## The service
#
# On Modal, `@modal.web_server` exposes the port the function listens on. The
# server is the standard library's, so the image needs nothing more.


@app.function()
@modal.web_server(8000)
def serve():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (greeting() + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


@app.local_entrypoint()
def main():
    print(greeting())
