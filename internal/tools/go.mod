// The repository's own tools (not released: see CONTRIBUTING.md, Releasing).
// A module of its own so that golang.org/x/mod stays out of relock's go.mod.
// relmod: no-release

module github.com/relock-go/relock/internal/tools

go 1.26.0

require golang.org/x/mod v0.43.0
