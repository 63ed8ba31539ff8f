# videobot: the Discord bot and its GPU engine in one image.
#
#   docker build -t videobot .
#   docker run -d --gpus all -e DISCORD_TOKEN=... \
#     -v videobot-hf:/data/hf -v videobot-models:/data/models \
#     -v videobot-db:/data/db -v videobot-outputs:/data/outputs videobot
#
# Base: python:3.11-slim rather than an nvidia/cuda image. The torch wheels on PyPI for Linux x86_64
# are the CUDA builds and bring the CUDA runtime, cuDNN and cuBLAS with them as nvidia-* pip
# packages, so a CUDA base image would only add a second copy of the same libraries. The one part no
# image carries is the driver (libcuda): the NVIDIA Container Toolkit mounts it from the host when
# the container runs with `--gpus all`. Python 3.11 is the version the project is tested on, and
# ffmpeg ships inside the imageio-ffmpeg wheel.
FROM python:3.11-slim-bookworm

# torch.compile is on by default on CUDA ([speed] compile = "auto"), and Triton compiles its small
# C launchers with the system C compiler at run time, which the slim image lacks: gcc and the C
# library headers. (A smaller image without them must set VIDEOBOT_SPEED__COMPILE=off.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# NVENC: the NVIDIA runtime mounts the driver's video encoder libraries only when the capabilities
# include "video"; without them [speed] encoder = "auto" falls back to libx264.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video

# torch first, pinned exactly (the project's rule, as in the Makefile): its layer is the largest and
# survives rebuilds of the code, and the dependencies below find torch satisfied and pull no other.
RUN pip install torch==2.13.0

# spandrel (the learned upscalers' loader; Real-ESRGAN is the default /upscale) without its
# dependencies, as the Makefile installs it: it declares torchvision, which it calls only in
# architectures never loaded here (pyproject.toml says more).
RUN pip install --no-deps spandrel==0.4.2

# The dependencies next, read from pyproject.toml alone, so that a change to the code rebuilds only
# the last, small layer: with one `pip install /tmp/src` every code change reinstalled some sixty
# packages (minutes, and a download on every build; `make image-check` showed it).
# EXTRAS names optional groups of pyproject.toml to install too, e.g.
# `--build-arg EXTRAS="quant soundtrack"` (torchao and gguf for the smaller memory plans, torchsde
# for Stable Audio soundtracks); `ray` for a Ray cluster. None by default.
ARG EXTRAS=""
COPY pyproject.toml /tmp/src/
RUN python -c "import os, tomllib; \
        project = tomllib.load(open('/tmp/src/pyproject.toml', 'rb'))['project']; \
        extras = project['optional-dependencies']; \
        print(*project['dependencies'], *(d for e in os.environ['EXTRAS'].split() for d in extras[e]), sep='\n')" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Only what the package needs, installed from a copy that is removed: the code lives in
# site-packages, and a source tree beside it could shadow it. `pip check` fails the build if the
# dependencies above missed anything the package asks for; the one line it may print, spandrel's
# torchvision (left out on purpose, above), is all it may say.
COPY README.md /tmp/src/
COPY bot /tmp/src/bot
COPY cogs /tmp/src/cogs
RUN pip install --no-deps /tmp/src && rm -rf /tmp/src \
    && { pip check || true; } \
        | grep -v -e "^No broken requirements found" -e "^spandrel 0.4.2 requires torchvision," \
        | { ! grep .; }

# The hub cache (real models, gigabytes), the tiny-model cache, the SQLite database and the rendered
# videos live on volumes, so rebuilding or replacing the container loses none of them. Named volumes
# start with this ownership; a bind-mounted host folder must be writable by uid 1000.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin videobot \
    && mkdir -p /data/hf /data/models /data/db /data/outputs \
    && chown -R videobot:videobot /data
ENV HF_HOME=/data/hf \
    VIDEOBOT_MODEL_CACHE=/data/models \
    VIDEOBOT_STORAGE__DATABASE=/data/db/videobot.sqlite3 \
    VIDEOBOT_STORAGE__OUTPUT_DIR=/data/outputs
VOLUME ["/data/hf", "/data/models", "/data/db", "/data/outputs"]

# The token is never baked in: pass DISCORD_TOKEN at run time (-e or --env-file). Other settings come
# from VIDEOBOT_* variables or a config file mounted at /data/config.toml (read-only is enough),
# found as config.toml in the working directory. Not VIDEOBOT_CONFIG: a file it names must exist.
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
WORKDIR /data
ENTRYPOINT ["videobot"]
CMD ["run"]
