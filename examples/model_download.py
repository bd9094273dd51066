# ---
# cmd: ["snapbuild", "build", "examples/model_download.py"]
# ---

# # Bake a model into the image
#
# Downloading model weights when a container starts makes every cold start
# slow. `Image.run_function` runs a Python function once, while the image is
# built, and keeps what it writes as a layer of the image: the weights are on
# disk when the container starts. The function gets arguments and a secret
# (an access token, say), and can use a Volume as a cache that outlives the
# build.
#
# ```sh
# snapbuild build examples/model_download.py
# snapbuild run model_image -- sh -c 'ls /models; cat /models/tiny-model.json'
# ```
#
# Here the "download" only writes a small file, so that the example runs
# offline.

import json
import os

import modal

MODEL_DIR = "/models"
CACHE_DIR = "/cache"
MODEL_NAME = "tiny-model"

# The token comes from the local environment, as a `modal.Secret` made from a
# dict (on Modal you would more often use `modal.Secret.from_name`).
hf_secret = modal.Secret.from_dict({"HF_TOKEN": os.environ.get("SNAPBUILD_EXAMPLE_TOKEN", "hf-example-token")})

# The cache Volume: for snapbuild, a directory of the host named after it. It is
# mounted while the function runs, and is not part of the image.
cache = modal.Volume.from_name("example-model-cache", create_if_missing=True)


def download_model(name: str, revision: str = "main"):
    token = os.environ["HF_TOKEN"]  # from the secret: never written to the image
    os.makedirs(MODEL_DIR, exist_ok=True)
    with open(os.path.join(MODEL_DIR, f"{name}.bin"), "w") as f:
        f.write(f"weights of {name} at {revision}\n")
    with open(os.path.join(MODEL_DIR, f"{name}.json"), "w") as f:
        json.dump({"name": name, "revision": revision, "token_length": len(token)}, f)
    with open(os.path.join(CACHE_DIR, "downloads.log"), "a") as f:
        f.write(f"{name} {revision}\n")
    print(f"downloaded {name} at {revision}")


model_image = (
    modal.Image.debian_slim(python_version="3.11")
    .env({"MODEL_DIR": MODEL_DIR})
    .run_function(
        download_model,
        args=(MODEL_NAME,),
        kwargs={"revision": "v1"},
        secrets=[hf_secret],
        volumes={CACHE_DIR: cache},
    )
)

app = modal.App("example-model-download", image=model_image)


@app.function()
def predict(prompt: str) -> str:
    with open(os.path.join(os.environ["MODEL_DIR"], f"{MODEL_NAME}.bin")) as f:
        weights = f.read().strip()
    return f"{prompt!r} answered with {weights}"


@app.local_entrypoint()
def main():
    print(predict.remote("hello"))
