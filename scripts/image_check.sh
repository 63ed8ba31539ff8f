#!/usr/bin/env bash
# make image-check: build the Dockerfile without Docker, run the image, and check it.
#
# Run by hand (it takes many minutes and gigabytes), never by `make test`. It needs root and the
# Debian packages buildah and debootstrap (apt-get install -y buildah debootstrap); docker-compose
# too for step 5 (apt-get install -y docker-compose, or pip install docker-compose). No Docker
# daemon and no container registry are used:
#
#   1. The base. A stand-in for python:3.11-slim-bookworm: Debian bookworm (debootstrap) with its
#      python3.11 and pip, reachable as /usr/local/bin/python, python3, pip and pip3 as in the
#      official image, committed under the name the Dockerfile's FROM resolves to, so the unmodified
#      Dockerfile builds on it without pulling. Built once; REBUILD_BASE=1 builds it again.
#   2. The image. The Dockerfile, with this machine's pip configuration (`pip config list`: its
#      files and PIP_* variables, merged into one pip.conf) and every local folder or file it names
#      (wheel folders, file:// indexes, constraints) mounted into each RUN step. Where those hold
#      the CPU torch wheel, `pip install torch==2.13.0` takes it; anywhere else pip fetches the CUDA
#      build from PyPI. The Dockerfile itself names none of these paths.
#   3. A video. `videobot generate` with a tiny model inside the image, as uid 1000, with the four
#      volumes bind-mounted from host folders owned by uid 1000.
#      Then a tiny Real-ESRGAN twin upscales through spandrel (installed apart, without torchvision).
#   4. No token. The default command (the image's ENTRYPOINT and CMD) without DISCORD_TOKEN must
#      exit with status 2 and print the how-to, and no traceback.
#   5. Compose. `docker-compose config` validates docker-compose.yml (no daemon needed).
#
# It prints the build time and the image size at the end (recorded in docs/DOCKER.md).
# Settings (environment): IMAGE_CHECK_DIR (work folder, default /var/tmp/videobot-image-check),
# IMAGE (default localhost/videobot:check), REBUILD_BASE=1, DEBIAN_MIRROR, STORAGE_DRIVER (vfs).
set -euo pipefail

cd "$(dirname "$0")/.."
WORK=${IMAGE_CHECK_DIR:-/var/tmp/videobot-image-check}
IMAGE=${IMAGE:-localhost/videobot:check}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILDAH=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")
export BUILDAH_ISOLATION=chroot

say() { printf '\n== image-check: %s\n' "$*"; }
die() {
	printf 'image-check: %s\n' "$*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "run as root: buildah's vfs storage and chroot isolation need it"
for tool in buildah debootstrap python3; do
	command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y buildah debootstrap"
done
mkdir -p "$WORK"

# The FROM line, as buildah resolves a short name: docker.io/library/NAME:TAG.
from=$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)
[[ $from == python:3.11-slim-bookworm ]] ||
	die "Dockerfile: FROM $from, but the stand-in is Debian bookworm's python3.11: update $0"
BASE=docker.io/library/$from

# --- 1. the stand-in base image ----------------------------------------------------------------
build_base() {
	local rootfs=$WORK/rootfs
	rm -rf "$rootfs"
	mkdir -p "$WORK/debs"
	say "debootstrap bookworm with python3.11 into $rootfs"
	debootstrap --variant=minbase --cache-dir="$WORK/debs" \
		--include=python3.11,python3-pip,ca-certificates,netbase,tzdata \
		bookworm "$rootfs" "$MIRROR"
	# What the official image has and Debian's differs in:
	# - python, python3, pip and pip3 in /usr/local/bin, first on PATH;
	# - no EXTERNALLY-MANAGED marker (PEP 668): `pip install` as root installs into the system
	#   Python, here /usr/local/lib/python3.11/dist-packages, with scripts in /usr/local/bin;
	# - the bookworm, bookworm-updates and bookworm-security sources, and empty apt lists.
	ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
	ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
	ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
	ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip3"
	rm -f "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
	rm -f "$rootfs/etc/apt/sources.list"
	cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: bookworm bookworm-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: http://deb.debian.org/debian-security
		Suites: bookworm-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	# - debian:bookworm-slim's apt and dpkg settings (the official image's base): apt deletes the
	#   downloaded .deb files after installing, and dpkg leaves out documentation, manuals and
	#   translations. Without them the Dockerfile's gcc layer came out about 100 MB larger here.
	cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
	EOF
	echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' \
		>"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
	local slim=(/usr/share/doc/ /usr/share/groff/ /usr/share/info/ /usr/share/linda/
		/usr/share/lintian/overrides/ /usr/share/locale/ /usr/share/man/)
	{
		printf 'path-exclude %s*\n' "${slim[@]}"
		echo 'path-include /usr/share/doc/*/copyright'
	} >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
	local folder
	for folder in "${slim[@]}"; do
		find "$rootfs$folder" -mindepth 1 \( -type f -o -type l \) ! -path '*/copyright' -delete \
			2>/dev/null || true
		find "$rootfs$folder" -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
	done
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
		"$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
	# The device nodes and kernel folders are the runtime's to provide.
	tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
		-cf "$WORK/rootfs.tar" .
	say "commit the stand-in as $BASE"
	local ctr
	ctr=$("${BUILDAH[@]}" from scratch)
	"${BUILDAH[@]}" add "$ctr" "$WORK/rootfs.tar" /
	local version
	version=$(chroot "$rootfs" python3.11 -c 'import platform; print(platform.python_version())')
	"${BUILDAH[@]}" config \
		--env PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env LANG=C.UTF-8 --env PYTHON_VERSION="$version" \
		--label org.videobot.image-check=stand-in --cmd python3 "$ctr"
	"${BUILDAH[@]}" commit --rm "$ctr" "$BASE"
	rm -rf "$rootfs" "$WORK/rootfs.tar"
}

base_s=0
if [[ ${REBUILD_BASE:-0} == 1 ]] || ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
	start=$(date +%s)
	build_base
	base_s=$(($(date +%s) - start))
else
	say "stand-in $BASE already built (REBUILD_BASE=1 builds it again)"
fi

# --- 2. the image ------------------------------------------------------------------------------
# This machine's pip settings, merged (PIP_* variables win over files, as in pip), and the local
# paths they name: `key=value` lines from `pip config list`, values split on spaces.
pip_python=python3
[[ -x .venv/bin/python ]] && pip_python=.venv/bin/python
"$pip_python" -m pip config list >"$WORK/pip-config.txt"
mounts=$(
	python3 - "$WORK/pip-config.txt" "$WORK/pip.conf" <<-'EOF'
		import ast, os, sys
		settings, paths = {}, []
		for line in open(sys.argv[1]):
		    name, _, value = line.strip().partition("=")
		    scope, _, key = name.rpartition(".")
		    if scope not in (":env:", "global", "install") or not key:
		        continue
		    value = ast.literal_eval(value)
		    if scope == ":env:" or key not in settings:
		        settings[key] = value
		for value in settings.values():
		    for token in value.split():
		        path = token.removeprefix("file://")
		        if not os.path.isabs(path) or not os.path.exists(path):
		            continue
		        # A file:// index's pages link to ../../files/: mount the folder above "simple".
		        if os.path.basename(path.rstrip("/")) == "simple":
		            path = os.path.dirname(path.rstrip("/"))
		        if path not in paths:
		            paths.append(path)
		with open(sys.argv[2], "w") as conf:
		    conf.write("[global]\n")
		    conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
		print("\n".join(paths))
	EOF
)
volumes=(--volume "$WORK/pip.conf:/etc/pip.conf:ro")
while IFS= read -r path; do
	[[ -n $path ]] && volumes+=(--volume "$path:$path:ro")
done <<<"$mounts"
say "build $IMAGE with pip's local configuration: $(tr '\n' ' ' <<<"$mounts")"
start=$(date +%s)
"${BUILDAH[@]}" bud --pull=never --layers "${volumes[@]}" -t "$IMAGE" .
build_s=$(($(date +%s) - start))

# --- 3. a video from a tiny model, as uid 1000, with the volumes -------------------------------
ctr=$("${BUILDAH[@]}" from --pull=never "$IMAGE")
trap '"${BUILDAH[@]}" rm "$ctr" >/dev/null' EXIT
config=$("${BUILDAH[@]}" inspect --type image "$IMAGE" |
	python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]))')
declared=$(python3 -c 'import json, sys; print(*sorted(json.loads(sys.argv[1])["Volumes"]))' "$config")
[[ $declared == "/data/db /data/hf /data/models /data/outputs" ]] ||
	die "the image declares the volumes $declared, not /data/db /data/hf /data/models /data/outputs"
# buildah 1.28's chroot runs mount their own copy of each declared VOLUME over a --volume bind to
# the same path, so the host folders would see nothing: the working container (not the image)
# forgets the declarations, and the binds below stand for the engine's volumes.
forget=()
for volume in $declared; do
	forget+=(--volume "$volume-")
done
"${BUILDAH[@]}" config "${forget[@]}" "$ctr"
data=$WORK/data
rm -rf "$data"
mkdir -p "$data"/{hf,models,db,outputs}
chown -R 1000:1000 "$data"
data_volumes=()
for volume in $declared; do
	data_volumes+=(--volume "$data/${volume#/data/}:$volume")
done
say "videobot generate with tiny_animatediff as uid 1000"
"${BUILDAH[@]}" run --user 1000:1000 "${data_volumes[@]}" "$ctr" -- \
	videobot generate "a paper boat drifting on a pond" --model tiny_animatediff \
	--num-frames 8 --width 64 --height 64 --steps 10 --seed 7 -o /data/outputs/check.mp4
video=$data/outputs/check.mp4
[[ -s $video ]] || die "no video at $video"
[[ $(stat -c %u "$video") == 1000 ]] || die "$video is owned by uid $(stat -c %u "$video"), not 1000"
[[ -n $(ls -A "$data/models") ]] || die "the tiny model was not built in the /data/models volume"
echo "ok: $(stat -c %s "$video") bytes in $video, owned by uid 1000; the model cache is in /data/models"

# The default upscaler loads through spandrel, which the Dockerfile installs on its own (without
# its torchvision): a tiny Real-ESRGAN twin must upscale inside the image.
say "Real-ESRGAN through spandrel as uid 1000"
"${BUILDAH[@]}" run --user 1000:1000 "${data_volumes[@]}" "$ctr" -- python -c '
import tempfile
from pathlib import Path

from PIL import Image

from bot.core import enhance
from bot.core.tiny.enhance import ESRGAN_FILES, build_tiny_realesrgan

folder = Path(tempfile.mkdtemp())
build_tiny_realesrgan(folder)
frames = [Image.new("RGB", (48, 32), (40 * i, 90, 160)) for i in range(3)]
out = enhance.upscale(frames, 2, device="cpu", source=str(folder / ESRGAN_FILES[2]))
assert [f.size for f in out] == [(96, 64)] * 3, [f.size for f in out]
print(f"ok: Real-ESRGAN upscaled {len(out)} frames from 48x32 to {out[0].size[0]}x{out[0].size[1]}")
'

# --- 4. the default command without a token ----------------------------------------------------
say "the default command without DISCORD_TOKEN"
mapfile -t default_command < <(
	python3 -c 'import json, sys; c = json.loads(sys.argv[1]); print(*c["Entrypoint"] + c["Cmd"], c["User"], sep="\n")' "$config"
)
user=${default_command[-1]}
unset 'default_command[-1]'
set +e
output=$("${BUILDAH[@]}" run --user "$user" "${data_volumes[@]}" "$ctr" -- "${default_command[@]}" 2>&1)
status=$?
set -e
printf '%s\n' "$output"
[[ $status == 2 ]] || die "'${default_command[*]}' without a token exited $status, not 2"
[[ $output == "No Discord bot token: set the DISCORD_TOKEN environment variable."* ]] ||
	die "'${default_command[*]}' without a token did not start with the how-to line"
[[ $output != *Traceback* ]] || die "'${default_command[*]}' without a token printed a traceback"
echo "ok: '${default_command[*]}' as $user exits 2 with the how-to"

# --- 5. the compose file -----------------------------------------------------------------------
if command -v docker-compose >/dev/null; then
	say "docker-compose config"
	compose=$WORK/compose
	rm -rf "$compose"
	mkdir -p "$compose"
	cp docker-compose.yml Dockerfile "$compose/"
	cp .env.example "$compose/.env"
	cp config.example.toml "$compose/config.toml"
	docker-compose --project-directory "$compose" -f "$compose/docker-compose.yml" config -q
	echo "ok: docker-compose.yml is valid ($(docker-compose version --short))"
else
	say "docker-compose is not installed: docker-compose.yml not validated"
fi

size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE")
say "done: stand-in built in ${base_s} s (0: already there), image built in ${build_s} s, $IMAGE is $size"
