# The build's identity, derived as checks/lib/build-inputs.sh derives it from
# git for make:
#   revision         the full commit, "<commit>-dirty" for a modified tree
#                    (Nix's self.dirtyRev), "unknown" without git;
#   gitHash          its first 8 hex digits, never with "-dirty": build.rs
#                    accepts only 7 to 40 hex digits and would otherwise say
#                    "unknown" (empty without git: build.rs then says so);
#   sourceDateEpoch  the commit time (1980-01-01 without git, as stdenv).
# checks/nix-offline.sh evaluates it for a clean, a dirty and an unversioned
# tree.
self:

let
  rev = self.rev or self.dirtyRev or null;
in
{
  revision = if rev == null then "unknown" else rev;
  gitHash = if rev == null then "" else builtins.substring 0 8 rev;
  sourceDateEpoch = self.lastModified or 315532800;
}
