# The cryodiffseg engine image: the `cryodiffseg` command and its machine-learning stack (nothing of Scipion).
#
#   GPU image (default):  docker build -t cryodiffseg:0.1.0 .
#   CPU-only image:       --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
#   Weights baked in:     --build-arg SD_MODEL=CompVis/stable-diffusion-v1-4 --build-arg CELLPOSE_MODEL=cyto3
#
# Weights live in /opt/cryodiffseg/weights: a Hugging Face cache in huggingface/ (a backbone is named by its hub
# id) and CellPose models in cellpose/. Without SD_MODEL / CELLPOSE_MODEL nothing is downloaded: mount a folder
# of that layout there at run time, or use the compact backbone shipped inside the engine package.

ARG BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# ---------------------------------------------------------------- a Python with a virtual environment
FROM ${BASE_IMAGE} AS python
# The base's own Python when it has one (a Debian base with python3-venv), else Python from its apt archive.
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends \
            python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -c "import sys; assert sys.version_info >= (3, 10), 'the engine needs Python 3.10 or newer'" \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------- the engine package, built apart
FROM python AS engine-package
COPY setup.py /src/
COPY cryodiffseg /src/cryodiffseg
# Installed under a prefix that the final stage copies into its venv: the package (with its shipped backbone)
# and the cryodiffseg command, without the sources or a wheel left in any layer.
RUN pip install --no-cache-dir --no-deps --prefix /engine /src

# ---------------------------------------------------------------- the image
FROM python

# torch first and on its own, so that nothing later pulls another build of it. The default is PyPI's CUDA
# build; CI passes pip arguments that take a local CPU wheel instead.
ARG TORCH_SPEC="torch==2.13.0"
RUN pip install --no-cache-dir ${TORCH_SPEC}

# The engine's other dependencies, in a layer that only a change of setup.py rebuilds: the package is
# installed from setup.py alone for its requirements, then removed (the real one comes last).
COPY setup.py /tmp/requirements/
COPY cryodiffseg/__init__.py /tmp/requirements/cryodiffseg/
RUN pip install --no-cache-dir "/tmp/requirements[engine]" \
    && pip uninstall --yes cryodiffseg \
    && rm -rf /tmp/requirements

RUN useradd --create-home --uid 10001 --user-group --shell /bin/bash cryodiffseg

# The weights folder: found through HF_HOME and CELLPOSE_LOCAL_MODELS_PATH, baked or mounted. The baking
# script stays in the image: it also fills a host folder to mount (see the admin guide).
ENV CRYODIFFSEG_WEIGHTS=/opt/cryodiffseg/weights
ENV HF_HOME=${CRYODIFFSEG_WEIGHTS}/huggingface \
    CELLPOSE_LOCAL_MODELS_PATH=${CRYODIFFSEG_WEIGHTS}/cellpose
ARG SD_MODEL=""
ARG CELLPOSE_MODEL=""
COPY scripts/bake-weights.py /opt/cryodiffseg/bake-weights.py
RUN mkdir -p "$HF_HOME" "$CELLPOSE_LOCAL_MODELS_PATH" \
    && if [ -n "$SD_MODEL" ] || [ -n "$CELLPOSE_MODEL" ]; then \
        python /opt/cryodiffseg/bake-weights.py --sd-model "$SD_MODEL" --cellpose-model "$CELLPOSE_MODEL" \
        && rm -rf "$HF_HOME/xet" "$HF_HOME/hub/.locks"; \
    fi \
    && chmod -R a+rX "$CRYODIFFSEG_WEIGHTS"

COPY --from=engine-package /engine/ /opt/venv/
RUN cryodiffseg --version

# Runs are offline (plugins start the container without network): the hub must fail at once, not retry.
# Caches go to /tmp, writable whichever user the container runs as.
ENV HF_HUB_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba
USER cryodiffseg
WORKDIR /home/cryodiffseg
HEALTHCHECK --interval=10m --timeout=2m CMD ["cryodiffseg", "--version"]
ENTRYPOINT ["cryodiffseg"]
CMD ["--help"]
