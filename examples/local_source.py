# ---
# cmd: ["snapbuild", "build", "examples/local_source.py"]
# ---

# # Use your own Python package
#
# Code of your project that is not installed from an index (here the package
# `mylib`, next to this file) is added to the image with
# `add_local_python_source`: it lands in `/root/mylib`, where Modal's
# functions import it from. As with Modal, the package is found by the Python
# that reads this file (this file's directory is on `sys.path`), and only its
# `.py` files are added.
#
# ```sh
# snapbuild build examples/local_source.py
# snapbuild run source_image -- sh -c 'cat /root/built; ls /root/mylib'
# ```
#
# `copy=True` makes the package a layer of the image, so that later build
# steps can use it: the last step runs it while the image is built.

import modal

source_image = (
    modal.Image.debian_slim(python_version="3.11")
    .add_local_python_source("mylib", copy=True)
    .run_commands("cd /root && python -c 'import mylib; print(mylib.shout(\"built\"))' > /root/built")
)

app = modal.App("example-local-source", image=source_image)


@app.function()
def shout(text: str) -> str:
    import mylib

    return mylib.shout(text)


@app.local_entrypoint()
def main():
    print(shout.remote("hello"))
