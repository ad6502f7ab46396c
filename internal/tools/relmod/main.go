// Command relmod knows the modules of the relock repository and what a
// release of them needs: the tags, in order, the go.mod rewrite, the
// CHANGELOG section, and a file-based module proxy that serves a release
// candidate as the go command would get it from the tags.
//
// Every go.mod tracked in the repository is a module (none under testdata,
// vendor, or directories starting with . or _); one whose go.mod has a
// comment containing "relmod: no-release" is not tagged. All released
// modules share one version (lockstep). The root module's tag is vX.Y.Z,
// the module in directory D has D/vX.Y.Z, and a module is tagged after the
// modules of the repository it requires (the root first).
//
// Usage (from anywhere in the work tree; -C names another one):
//
//	relmod list                  modules in release order: directory, path, released or not
//	relmod lint                  check the go.mod files for what would break a release or development
//	relmod plan VERSION          check VERSION against the existing tags; print the tags to create, in order
//	relmod set-version VERSION   set every requirement of a repository module to VERSION in the go.mod files
//	relmod changelog VERSION     turn CHANGELOG.md's Unreleased section into VERSION's (-date, -prev)
//	relmod proxy -o DIR VERSION  write a GOPROXY=file://DIR proxy serving the released modules at VERSION
//
// See CONTRIBUTING.md, "Releasing", for the process around it
// (scripts/release) and the CI check that uses the proxy
// (scripts/consumer-check).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage: relmod [-C dir] COMMAND [args]

  list                  modules in release order
  lint                  check the go.mod files
  plan VERSION          check VERSION against existing tags; print the tags to create, in order
  set-version VERSION   set requirements of repository modules to VERSION in every go.mod
  changelog [-date YYYY-MM-DD] [-prev vX.Y.Z] VERSION
                        move CHANGELOG.md's Unreleased section under VERSION
  proxy -o DIR VERSION  write a file-based module proxy serving the released modules at VERSION
`)
	os.Exit(2)
}

func main() {
	dir := flag.String("C", ".", "a directory in the repository's work tree")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() < 1 {
		usage()
	}
	root, err := repoRoot(*dir)
	if err != nil {
		fatal(err)
	}
	repo, err := LoadRepo(root)
	if err != nil {
		fatal(err)
	}
	cmd, args := flag.Arg(0), flag.Args()[1:]
	switch cmd {
	case "list":
		for _, m := range repo.Modules {
			rel := "released, tags " + m.TagPrefix() + "vX.Y.Z"
			if !m.Release {
				rel = "not released"
			}
			var reqs []string
			for _, r := range repo.Internal(m) {
				reqs = append(reqs, r.Mod.Path+"@"+r.Mod.Version)
			}
			fmt.Printf("%-16s %-48s %s; go %s", m.Dir, m.Path, rel, goVersion(m))
			if len(reqs) > 0 {
				fmt.Printf("; requires %s", strings.Join(reqs, ", "))
			}
			fmt.Println()
		}
	case "lint":
		problems := repo.Lint()
		for _, p := range problems {
			fmt.Println(p)
		}
		if len(problems) > 0 {
			os.Exit(1)
		}
		fmt.Printf("%d modules, %d released: ok\n", len(repo.Modules), len(repo.Released()))
	case "plan":
		v := versionArg(args)
		tags, err := repo.Plan(v)
		if err != nil {
			fatal(err)
		}
		for _, t := range tags {
			fmt.Println(t)
		}
	case "set-version":
		v := versionArg(args)
		for _, m := range repo.Modules {
			data, changed, err := repo.SetVersion(m, v)
			if err != nil {
				fatal(err)
			}
			if !changed {
				continue
			}
			if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(m.Dir), "go.mod"), data, 0o644); err != nil {
				fatal(err)
			}
			fmt.Printf("%s/go.mod: repository modules required at %s\n", m.Dir, v)
		}
	case "changelog":
		fs := flag.NewFlagSet("changelog", flag.ExitOnError)
		date := fs.String("date", time.Now().UTC().Format(time.DateOnly), "the release date")
		prev := fs.String("prev", "", "the previous release (default: the newest vX.Y.Z tag below VERSION)")
		fs.Parse(args)
		v := versionArg(fs.Args())
		if *prev == "" {
			if *prev, err = previousRelease(root, v); err != nil {
				fatal(err)
			}
		}
		name := filepath.Join(root, "CHANGELOG.md")
		text, err := os.ReadFile(name)
		if err != nil {
			fatal(err)
		}
		out, err := ReleaseChangelog(string(text), v, *prev, *date, "https://"+repo.RootModule().Path)
		if err != nil {
			fatal(err)
		}
		if err := os.WriteFile(name, []byte(out), 0o644); err != nil {
			fatal(err)
		}
		fmt.Printf("CHANGELOG.md: Unreleased is now %s (%s)\n", strings.TrimPrefix(v, "v"), *date)
	case "proxy":
		fs := flag.NewFlagSet("proxy", flag.ExitOnError)
		out := fs.String("o", "", "the proxy's directory (created)")
		fs.Parse(args)
		v := versionArg(fs.Args())
		if *out == "" {
			fatal(fmt.Errorf("proxy: -o DIR is required"))
		}
		wrote, err := repo.WriteProxy(*out, v, time.Now())
		if err != nil {
			fatal(err)
		}
		for _, m := range wrote {
			fmt.Printf("%s@%s\n", m.Path, v)
		}
	default:
		usage()
	}
}

func versionArg(args []string) string {
	if len(args) != 1 {
		usage()
	}
	if err := CheckVersion(args[0]); err != nil {
		fatal(err)
	}
	return args[0]
}

func goVersion(m *Module) string {
	if m.File.Go == nil {
		return "(none)"
	}
	return m.File.Go.Version
}

// Plan checks that v can be released: no released module has the tag yet,
// and v is above every version it has been tagged with. It returns the
// tags to create, in order.
func (r *Repo) Plan(v string) ([]string, error) {
	existing, err := gitLines(r.Root, "tag", "-l")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, t := range existing {
		have[t] = true
	}
	var tags []string
	for _, m := range r.Released() {
		if have[m.Tag(v)] {
			return nil, fmt.Errorf("tag %s exists already", m.Tag(v))
		}
		for _, t := range existing {
			if old, ok := strings.CutPrefix(t, m.TagPrefix()); ok && semver.IsValid(old) && !strings.Contains(old, "/") && semver.Compare(old, v) >= 0 {
				return nil, fmt.Errorf("%s: %s is not above the existing tag %s", m.Path, v, t)
			}
		}
		tags = append(tags, m.Tag(v))
	}
	return tags, nil
}

// previousRelease is the newest root tag vX.Y.Z below v that is not a
// prerelease, or "" if there is none.
func previousRelease(root, v string) (string, error) {
	tags, err := gitLines(root, "tag", "-l", "v*")
	if err != nil {
		return "", err
	}
	prev := ""
	for _, t := range tags {
		if semver.IsValid(t) && semver.Prerelease(t) == "" && semver.Compare(t, v) < 0 && (prev == "" || semver.Compare(t, prev) > 0) {
			prev = t
		}
	}
	return prev, nil
}

func gitLines(dir string, args ...string) ([]string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out)), nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "relmod:", err)
	os.Exit(1)
}
