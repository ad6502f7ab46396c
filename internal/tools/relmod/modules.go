package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// noReleaseMarker, in a comment of a go.mod file, keeps that module out of
// releases: it gets no tag and no place in the file proxy. Its requirements
// of the repository's modules are still rewritten, so that it builds
// against what was released.
const noReleaseMarker = "relmod: no-release"

// A Module is one go.mod file of the repository.
type Module struct {
	Dir     string // slash-separated, relative to the repository root; "." for the root
	Path    string // the module path
	Release bool   // tagged and published (no noReleaseMarker)
	Data    []byte // the go.mod file as it is on disk
	File    *modfile.File
}

// TagPrefix is what precedes the version in the module's tags: "" for the
// root module, "otel/" for the module in otel/ (Go modules reference,
// "Mapping versions to commits").
func (m *Module) TagPrefix() string {
	if m.Dir == "." {
		return ""
	}
	return m.Dir + "/"
}

// Tag is the module's tag for version v.
func (m *Module) Tag(v string) string { return m.TagPrefix() + v }

// Repo is the repository: its root directory and its modules, root first,
// then each module after every module of the repository it requires.
type Repo struct {
	Root    string
	Modules []*Module
}

// gitFiles runs git in dir and returns its NUL-separated output.
func gitFiles(dir string, args ...string) ([]string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	var files []string
	for f := range strings.SplitSeq(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// repoRoot returns the top of the git work tree that holds dir.
func repoRoot(dir string) (string, error) {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("not in a git work tree (%s): %w", dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// LoadRepo finds every tracked go.mod file under root (none in testdata or
// vendor directories, nor in directories whose name starts with . or _,
// which the go command ignores) and orders the modules.
func LoadRepo(root string) (*Repo, error) {
	files, err := gitFiles(root, "ls-files", "-z", "--", "go.mod", "*/go.mod")
	if err != nil {
		return nil, err
	}
	r := &Repo{Root: root}
	for _, f := range files {
		dir := path.Dir(f)
		if ignoredDir(dir) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		mf, err := modfile.Parse(f, data, nil)
		if err != nil {
			return nil, err
		}
		if mf.Module == nil {
			return nil, fmt.Errorf("%s: no module directive", f)
		}
		r.Modules = append(r.Modules, &Module{
			Dir:     dir,
			Path:    mf.Module.Mod.Path,
			Release: !bytes.Contains(data, []byte(noReleaseMarker)),
			Data:    data,
			File:    mf,
		})
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	if err := r.order(); err != nil {
		return nil, err
	}
	return r, nil
}

func ignoredDir(dir string) bool {
	if dir == "." {
		return false
	}
	for elem := range strings.SplitSeq(dir, "/") {
		if elem == "testdata" || elem == "vendor" || strings.HasPrefix(elem, ".") || strings.HasPrefix(elem, "_") {
			return true
		}
	}
	return false
}

// RootModule is the module at the repository's root.
func (r *Repo) RootModule() *Module {
	for _, m := range r.Modules {
		if m.Dir == "." {
			return m
		}
	}
	return nil
}

// Module returns the repository's module with that path, or nil.
func (r *Repo) Module(p string) *Module {
	for _, m := range r.Modules {
		if m.Path == p {
			return m
		}
	}
	return nil
}

// check verifies that the tags can work: a module in directory D has the
// path <root module path>/D, so that the tag D/vX.Y.Z names it, with no
// major version suffix (v2 and later would need one).
func (r *Repo) check() error {
	root := r.RootModule()
	if root == nil {
		return fmt.Errorf("no go.mod at the repository root")
	}
	if _, major, ok := module.SplitPathVersion(root.Path); !ok || major != "" {
		return fmt.Errorf("root module %s: a major version suffix is not supported", root.Path)
	}
	for _, m := range r.Modules {
		if m.Dir != "." && m.Path != root.Path+"/"+m.Dir {
			return fmt.Errorf("%s/go.mod: module %s, want %s/%s so that its tags %sv... name it", m.Dir, m.Path, root.Path, m.Dir, m.TagPrefix())
		}
	}
	return nil
}

// order sorts the modules so that each comes after the modules of the
// repository that it requires (the root module first), by directory among
// equals. A cycle is an error: its modules could not be tagged in order.
func (r *Repo) order() error {
	byPath := map[string]*Module{}
	for _, m := range r.Modules {
		byPath[m.Path] = m
	}
	deps := map[*Module][]*Module{}
	for _, m := range r.Modules {
		for _, req := range m.File.Require {
			if d := byPath[req.Mod.Path]; d != nil && d != m {
				deps[m] = append(deps[m], d)
			}
		}
	}
	slices.SortFunc(r.Modules, func(a, b *Module) int {
		if a.Dir == "." || b.Dir == "." {
			return boolCmp(a.Dir != ".", b.Dir != ".")
		}
		return strings.Compare(a.Dir, b.Dir)
	})
	var out []*Module
	state := map[*Module]int{} // 1 visiting, 2 done
	var visit func(m *Module, stack []string) error
	visit = func(m *Module, stack []string) error {
		switch state[m] {
		case 1:
			return fmt.Errorf("modules require each other in a cycle: %s -> %s", strings.Join(stack, " -> "), m.Path)
		case 2:
			return nil
		}
		state[m] = 1
		for _, d := range deps[m] {
			if err := visit(d, append(stack, m.Path)); err != nil {
				return err
			}
		}
		state[m] = 2
		out = append(out, m)
		return nil
	}
	for _, m := range r.Modules {
		if err := visit(m, nil); err != nil {
			return err
		}
	}
	r.Modules = out
	return nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Released returns the modules that releases tag, in order.
func (r *Repo) Released() []*Module {
	var out []*Module
	for _, m := range r.Modules {
		if m.Release {
			out = append(out, m)
		}
	}
	return out
}

// Internal returns the requirements of m on other modules of the
// repository.
func (r *Repo) Internal(m *Module) []*modfile.Require {
	var out []*modfile.Require
	for _, req := range m.File.Require {
		if d := r.Module(req.Mod.Path); d != nil && d != m {
			out = append(out, req)
		}
	}
	return out
}

// Lint reports what would make the repository's modules unreleasable or
// inconsistent for development: a requirement of a repository module that
// is not replaced by its directory (development builds would then use the
// published version, not the work tree), a requirement of a module that
// is not released, and requirements of repository modules at different
// versions (modules are released in lockstep, with one version).
func (r *Repo) Lint() []string {
	var problems []string
	versions := map[string][]string{}
	for _, m := range r.Modules {
		for _, req := range r.Internal(m) {
			d := r.Module(req.Mod.Path)
			versions[req.Mod.Version] = append(versions[req.Mod.Version], m.Dir+"/go.mod")
			if m.Release && !d.Release {
				problems = append(problems, fmt.Sprintf("%s/go.mod: requires %s, which is not released", m.Dir, d.Path))
			}
			want := relDir(m.Dir, d.Dir)
			replaced := false
			for _, rep := range m.File.Replace {
				if rep.Old.Path == d.Path && rep.Old.Version == "" {
					if rep.New.Version != "" || path.Clean(rep.New.Path) != want {
						problems = append(problems, fmt.Sprintf("%s/go.mod: replace %s => %s %s, want => %s", m.Dir, d.Path, rep.New.Path, rep.New.Version, want))
					}
					replaced = true
				}
			}
			if !replaced && !m.Release {
				// A released module may do without: after a release its
				// go.mod has none (see SetVersion), and go.work makes
				// development use the work tree.
				problems = append(problems, fmt.Sprintf("%s/go.mod: requires %s with no replace => %s: its builds would not use the work tree", m.Dir, d.Path, want))
			}
		}
	}
	if len(versions) > 1 {
		var vs []string
		for v, where := range versions {
			vs = append(vs, fmt.Sprintf("%s (%s)", v, strings.Join(where, ", ")))
		}
		slices.Sort(vs)
		problems = append(problems, "repository modules required at different versions: "+strings.Join(vs, "; "))
	}
	return problems
}

// relDir is the relative path from directory from to directory to, both
// slash-separated and relative to the repository root, in the form a
// replace directive needs ("../", "../otel").
func relDir(from, to string) string {
	rel, err := filepath.Rel(filepath.FromSlash(from), filepath.FromSlash(to))
	if err != nil {
		return to
	}
	rel = filepath.ToSlash(rel)
	if !strings.HasPrefix(rel, "../") && rel != ".." {
		rel = "./" + rel
	}
	return path.Clean(rel)
}

// CheckVersion accepts a canonical semantic version with no build
// metadata and a major version of 0 or 1 (the module paths have no /vN
// suffix).
func CheckVersion(v string) error {
	if !semver.IsValid(v) || semver.Canonical(v) != v || semver.Build(v) != "" {
		return fmt.Errorf("version %q: want vMAJOR.MINOR.PATCH[-PRERELEASE], e.g. v0.1.0", v)
	}
	if m := semver.Major(v); m != "v0" && m != "v1" {
		return fmt.Errorf("version %q: major version %s would need a /%s suffix on every module path", v, m, m)
	}
	return nil
}

// SetVersion returns m's go.mod with every requirement of a repository
// module set to v, and whether that changed anything. A released module
// also loses its replace directives of repository modules: the go command
// refuses `go install module@version` for a module whose go.mod has any,
// and its users resolve the other modules at v from their tags anyway
// (development goes through go.work). Comments, other replace directives
// and the rest are kept.
func (r *Repo) SetVersion(m *Module, v string) ([]byte, bool, error) {
	mf, err := modfile.Parse(m.Dir+"/go.mod", m.Data, nil)
	if err != nil {
		return nil, false, err
	}
	changed := false
	for _, req := range mf.Require {
		if d := r.Module(req.Mod.Path); d != nil && d != m && req.Mod.Version != v {
			if err := mf.AddRequire(req.Mod.Path, v); err != nil {
				return nil, false, err
			}
			changed = true
		}
	}
	if m.Release {
		for _, rep := range slices.Clone(mf.Replace) {
			if r.Module(rep.Old.Path) != nil {
				if err := mf.DropReplace(rep.Old.Path, rep.Old.Version); err != nil {
					return nil, false, err
				}
				changed = true
			}
		}
	}
	if !changed {
		return m.Data, false, nil
	}
	mf.Cleanup()
	out, err := mf.Format()
	return out, true, err
}
