package main

import (
	"archive/zip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

// testRepo makes a git repository with the given files committed and
// returns its root.
func testRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", root, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "init")
	return root
}

// A repository shaped like relock after the adapters get modules of their
// own: otel requires the root and an adapter, the adapter the root; bench
// is not released; a go.mod under testdata is not a module.
var layout = map[string]string{
	"go.mod":  "module example.com/lock\n\ngo 1.26.0\n",
	"lock.go": "package lock\n",
	"otel/go.mod": `module example.com/lock/otel

go 1.26.0

replace example.com/lock => ../

replace example.com/lock/adapters/a => ../adapters/a

require (
	example.com/lock v0.0.0
	example.com/lock/adapters/a v0.0.0 // the adapter
	golang.org/x/mod v0.43.0
)
`,
	"otel/otel.go": "package otel\n",
	"adapters/a/go.mod": `module example.com/lock/adapters/a

go 1.25.0

replace example.com/lock => ../..

require example.com/lock v0.0.0
`,
	"adapters/a/a.go": "package a\n",
	"bench/go.mod": `// relmod: no-release
module example.com/lock/bench

go 1.26.0

replace example.com/lock => ../

require example.com/lock v0.0.0
`,
	"internal/x/testdata/mod/go.mod": "module example.com/broken\n",
	"internal/x/x.go":                "package x\n",
}

func dirs(ms []*Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Dir)
	}
	return out
}

func TestLoadOrderAndTags(t *testing.T) {
	r, err := LoadRepo(testRepo(t, layout))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dirs(r.Modules), []string{".", "adapters/a", "bench", "otel"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if got, want := dirs(r.Released()), []string{".", "adapters/a", "otel"}; !slices.Equal(got, want) {
		t.Errorf("released %v, want %v", got, want)
	}
	if p := r.Lint(); len(p) != 0 {
		t.Errorf("lint: %v", p)
	}
	tags, err := r.Plan("v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v0.1.0", "adapters/a/v0.1.0", "otel/v0.1.0"}; !slices.Equal(tags, want) {
		t.Errorf("tags %v, want %v", tags, want)
	}
}

func TestPlanRefusesOldOrExistingVersions(t *testing.T) {
	root := testRepo(t, layout)
	if out, err := exec.Command("git", "-C", root, "tag", "otel/v0.2.0").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	r, err := LoadRepo(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v0.1.0", "v0.2.0"} {
		if _, err := r.Plan(v); err == nil {
			t.Errorf("Plan(%s) accepted a version not above otel/v0.2.0", v)
		}
	}
	if _, err := r.Plan("v0.2.1"); err != nil {
		t.Errorf("Plan(v0.2.1): %v", err)
	}
	for _, v := range []string{"0.1.0", "v0.1", "v2.0.0", "v0.1.0+meta"} {
		if CheckVersion(v) == nil {
			t.Errorf("CheckVersion(%q) accepted it", v)
		}
	}
}

func TestLintFindsMissingReplaceAndMixedVersions(t *testing.T) {
	files := map[string]string{}
	for k, v := range layout {
		files[k] = v
	}
	files["adapters/a/go.mod"] = "module example.com/lock/adapters/a\n\ngo 1.25.0\n\nrequire example.com/lock v0.1.0\n"
	files["bench/go.mod"] = "// relmod: no-release\n\nmodule example.com/lock/bench\n\ngo 1.25.0\n\nrequire example.com/lock v0.0.0\n"
	files["otel/go.mod"] = strings.Replace(files["otel/go.mod"], "example.com/lock/adapters/a v0.0.0", "example.com/lock/bench v0.0.0", 1)
	files["otel/go.mod"] = strings.Replace(files["otel/go.mod"], "replace example.com/lock/adapters/a => ../adapters/a", "replace example.com/lock/bench => ../bench", 1)
	r, err := LoadRepo(testRepo(t, files))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.Lint(), "\n")
	if strings.Contains(got, "adapters/a/go.mod: requires example.com/lock with no replace") {
		t.Errorf("lint wants a replace in a released module, which go.work covers:\n%s", got)
	}
	for _, want := range []string{
		"bench/go.mod: requires example.com/lock with no replace",
		"otel/go.mod: requires example.com/lock/bench, which is not released",
		"different versions",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lint says\n%s\nwant a line with %q", got, want)
		}
	}
}

func TestModulePathMustMatchDirectory(t *testing.T) {
	files := map[string]string{
		"go.mod":      "module example.com/lock\n\ngo 1.26.0\n",
		"otel/go.mod": "module example.com/lockotel\n\ngo 1.26.0\n",
	}
	if _, err := LoadRepo(testRepo(t, files)); err == nil || !strings.Contains(err.Error(), "want example.com/lock/otel") {
		t.Errorf("LoadRepo: %v, want a path mismatch", err)
	}
}

func TestSetVersionDropsReplacesOfReleasedModules(t *testing.T) {
	r, err := LoadRepo(testRepo(t, layout))
	if err != nil {
		t.Fatal(err)
	}
	data, changed, err := r.SetVersion(r.Module("example.com/lock/otel"), "v0.3.0")
	if err != nil || !changed {
		t.Fatalf("SetVersion: changed %v, %v", changed, err)
	}
	mf, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	vers := map[string]string{}
	for _, req := range mf.Require {
		vers[req.Mod.Path] = req.Mod.Version
	}
	if vers["example.com/lock"] != "v0.3.0" || vers["example.com/lock/adapters/a"] != "v0.3.0" || vers["golang.org/x/mod"] != "v0.43.0" {
		t.Errorf("requirements after SetVersion: %v", vers)
	}
	if len(mf.Replace) != 0 || !strings.Contains(string(data), "// the adapter") {
		t.Errorf("a released module keeps replace directives of repository modules, or lost its comments:\n%s", data)
	}
	if _, changed, _ := r.SetVersion(r.RootModule(), "v0.3.0"); changed {
		t.Error("SetVersion changed the root module, which requires no repository module")
	}
}

func TestWriteProxy(t *testing.T) {
	root := testRepo(t, layout)
	// Untracked files stay out of the zips; uncommitted changes to tracked
	// files are in.
	if err := os.WriteFile(filepath.Join(root, "untracked.go"), []byte("package lock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lock.go"), []byte("package lock // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRepo(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const v = "v0.0.0-ci.1"
	wrote, err := r.WriteProxy(dir, v, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dirs(wrote), []string{".", "adapters/a", "otel"}; !slices.Equal(got, want) {
		t.Errorf("proxy serves %v, want %v", got, want)
	}
	zipFiles := func(p string) map[string]string {
		zr, err := zip.OpenReader(p)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		out := map[string]string{}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[f.Name] = string(b)
		}
		return out
	}
	rootZip := zipFiles(filepath.Join(dir, "example.com/lock/@v", v+".zip"))
	var names []string
	for n := range rootZip {
		names = append(names, n)
	}
	slices.Sort(names)
	// A directory with a go.mod is left out, in testdata too, as the go
	// command does.
	want := []string{"example.com/lock@" + v + "/go.mod", "example.com/lock@" + v + "/internal/x/x.go", "example.com/lock@" + v + "/lock.go"}
	if !slices.Equal(names, want) {
		t.Errorf("root zip has %v, want %v", names, want)
	}
	if got := rootZip["example.com/lock@"+v+"/lock.go"]; got != "package lock // changed\n" {
		t.Errorf("lock.go in the zip: %q", got)
	}
	otelMod, err := os.ReadFile(filepath.Join(dir, "example.com/lock/otel/@v", v+".mod"))
	if err != nil {
		t.Fatal(err)
	}
	otelZip := zipFiles(filepath.Join(dir, "example.com/lock/otel/@v", v+".zip"))
	if otelZip["example.com/lock/otel@"+v+"/go.mod"] != string(otelMod) {
		t.Error("the .mod file and the go.mod in the zip differ")
	}
	if !strings.Contains(string(otelMod), "example.com/lock "+v) || !strings.Contains(string(otelMod), "example.com/lock/adapters/a "+v) {
		t.Errorf("otel's go.mod in the proxy:\n%s", otelMod)
	}
	for _, f := range []string{"list", v + ".info"} {
		b, err := os.ReadFile(filepath.Join(dir, "example.com/lock/@v", f))
		if err != nil || !strings.Contains(string(b), v) {
			t.Errorf("%s: %q, %v", f, b, err)
		}
	}
}

func TestReleaseChangelog(t *testing.T) {
	in := `# Changelog

Intro.

## [Unreleased]

### Added
- A thing.

## [0.1.0] - 2026-01-01

### Added
- The start.

[Unreleased]: https://example.com/lock/compare/v0.1.0...HEAD
[0.1.0]: https://example.com/lock/releases/tag/v0.1.0
`
	want := `# Changelog

Intro.

## [Unreleased]

## [0.2.0] - 2026-12-07

### Added
- A thing.

## [0.1.0] - 2026-01-01

### Added
- The start.

[Unreleased]: https://example.com/lock/compare/v0.2.0...HEAD
[0.2.0]: https://example.com/lock/compare/v0.1.0...v0.2.0
[0.1.0]: https://example.com/lock/releases/tag/v0.1.0
`
	got, err := ReleaseChangelog(in, "v0.2.0", "v0.1.0", "2026-12-07", "https://example.com/lock")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := ReleaseChangelog(want, "v0.3.0", "v0.2.0", "2026-12-08", "https://example.com/lock"); err == nil {
		t.Error("released an empty Unreleased section")
	}
	if _, err := ReleaseChangelog(in, "v0.1.0", "", "2026-12-08", "https://example.com/lock"); err == nil {
		t.Error("released 0.1.0 twice")
	}
}
