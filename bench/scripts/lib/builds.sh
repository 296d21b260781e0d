# Sourced by the compare scripts: builds transitd-bench at an earlier commit and from this
# tree, for runs side by side. Both builds run this tree's benchmark code (the files named,
# copied into REV's worktree). After `build_both REV FILE...`, BUILDS holds "label=binary"
# pairs: REV's (if REV is not empty), then this tree's. Needs PROFILE (release or dev).
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
# Both builds use this tree's target directory, so REV's reuses the dependencies built here
# (a target directory of its own rebuilt every one of them: minutes of CI's 30). Each
# binary is copied out under target/compare/ as soon as it is built: the other build
# replaces target/$DIR/transitd-bench.
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TARGET_DIR=$TARGET
CMP=$TARGET/compare
mkdir -p "$CMP"
BUILDS=()
# Cargo names a workspace crate's artifacts and fingerprints by its path inside the
# workspace, so REV's crates take the names of this tree's: to any later build here, this
# tree's sources (older than REV's artifacts) would look built, and it would link REV's code
# (measuring REV twice, or a developer's next build silently REV's). Forgetting the
# fingerprints REV's build wrote makes the next build build this tree's crates again (the
# workspace's packages are all named transitd*; dependencies are left alone). Done however
# the REV build ends: a failed or interrupted one leaves what it finished, too.
forget_rev_build() {
  [ -e "$CMP/rev-build-started" ] || return 0
  find "$TARGET/$DIR/.fingerprint" -mindepth 2 -maxdepth 2 -path '*/.fingerprint/transitd*/*' \
    -newer "$CMP/rev-build-started" -printf '%h\n' | sort -u | xargs -r rm -rf
  rm -f "$CMP/rev-build-started"
}
build_both() {
  local rev=$1
  shift
  if [ -n "$rev" ]; then
    WT=$CMP/worktree
    git worktree remove --force "$WT" 2>/dev/null || true
    git worktree add -f --detach "$WT" "$rev" >/dev/null
    trap 'forget_rev_build; git worktree remove --force "$WT" 2>/dev/null || true' EXIT
    cp "$@" "$WT/bench/src/"
    touch "$CMP/rev-build-started"
    (cd "$WT" && cargo build -q --profile "$PROFILE" -p transitd-bench)
    local short
    short=$(git rev-parse --short "$rev")
    cp -f "$TARGET/$DIR/transitd-bench" "$CMP/transitd-bench.$short"
    BUILDS=("$short=$CMP/transitd-bench.$short")
    forget_rev_build
    touch "$CMP/rev-built"
  fi
  cargo build -q --profile "$PROFILE" -p transitd-bench
  if [ -n "$rev" ] && ! [ "$TARGET/$DIR/transitd-bench" -nt "$CMP/rev-built" ]; then
    echo "$0: this tree's transitd-bench was not rebuilt after $rev's: it would be $rev's" >&2
    exit 1
  fi
  cp -f "$TARGET/$DIR/transitd-bench" "$CMP/transitd-bench.this-tree"
  BUILDS+=("this tree=$CMP/transitd-bench.this-tree")
}
