# Sourced by the setup scripts: fetching pinned packages from the registries,
# each checked against the hash it is pinned to before anything uses it.
# The caller defines log() and die().

# Prints the path of the tarball of NAME@VERSION, fetched with `npm pack` into
# DIR, after checking its integrity (the registry's `dist.integrity`).
fetch_pkg() {
  local name=$1 version=$2 integrity=$3 dir=$4 file got
  file="$dir/$(npm pack "$name@$version" --pack-destination "$dir" --silent | tail -n1)"
  got=$(node -e 'const c = require("node:crypto"), fs = require("node:fs")
    process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$file")
  [ "$got" = "$integrity" ] || die "$name@$version: integrity $got, expected $integrity"
  printf '%s\n' "$file"
}

# Dies unless FILE's SHA-256 is SHA256.
check_sha256() {
  local file=$1 sha256=$2 got
  got=$(sha256sum "$file" | cut -d' ' -f1)
  [ "$got" = "$sha256" ] || die "$(basename "$file"): sha256 $got, expected $sha256"
}

# Prints the path of the wheel of NAME==VERSION for PLATFORM (a wheel tag such
# as musllinux_1_2_x86_64), fetched with `pip download` into DIR, after
# checking its SHA-256.
fetch_wheel() {
  local name=$1 version=$2 platform=$3 sha256=$4 dir=$5 file
  python3 -m pip download -q --no-deps --only-binary=:all: --platform "$platform" -d "$dir" "$name==$version" >&2 ||
    die "pip download $name==$version ($platform) failed"
  file=$(ls "$dir"/*-"$version"-*"$platform".whl) || die "no $platform wheel of $name $version in $dir"
  check_sha256 "$file" "$sha256"
  printf '%s\n' "$file"
}

# Prints the path of the .deb of Debian package NAME=VERSION (NAME may carry
# an :arch), fetched with `apt-get download` from SUITE into DIR, after
# checking its SHA-256. The suite's lists are kept in an apt state of their
# own under STATE: the system's apt sources and state are not touched.
fetch_deb() {
  local name=$1 version=$2 suite=$3 sha256=$4 dir=$5 state=$6 file sub
  local opts=(-o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=$state/status"
    -o "Dir::Cache=$state/cache" -o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=$state/none"
    -o "Dir::Etc::PreferencesParts=$state/none" -o "Dir::Etc::Preferences=$state/none/preferences"
    -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 -o Acquire::Languages=none -o APT::Sandbox::User=root
    -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false)
  local line="deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/none"
  touch "$state/status"
  if [ "$(cat "$state/sources.list" 2>/dev/null)" != "$line" ] || [ -z "$(ls "$state/lists" | grep -v partial)" ]; then
    printf '%s\n' "$line" >"$state/sources.list"
    apt-get "${opts[@]}" update -qq >&2 || die "apt-get update ($suite, in $state) failed"
  fi
  sub=$(mktemp -d "$dir/deb.XXXXXX")
  (cd "$sub" && apt-get "${opts[@]}" download -qq "$name=$version" >&2) ||
    die "apt-get download $name=$version ($suite) failed"
  file=$(ls "$sub"/*.deb)
  check_sha256 "$file" "$sha256"
  printf '%s\n' "$file"
}

# Installs the npm project SRC (a package.json and its package-lock.json, kept
# in the checkout) into DEST with `npm ci`, unless DEST already has that lock.
npm_ci_into() {
  local src=$1 dest=$2
  cmp -s "$src/package-lock.json" "$dest/package-lock.json" && [ -d "$dest/node_modules" ] && return
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  log "npm ci: $src into $dest"
  (cd "$dest" && npm ci --no-audit --no-fund --silent) || die "npm ci in $dest failed"
}
