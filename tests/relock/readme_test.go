package relock_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The documentation's Go code must compile and run. Every ```go block in
// README.md and in docs/*.md (readmeFiles) is either
//
//   - a complete program (package main, func main): TestReadmeSnippets
//     checks all of them with one go vet and builds them with one go
//     build, inside this module (so they resolve its dependencies
//     offline), and runs each against the real Redis server, with
//     "127.0.0.1:6379" in its text replaced by testredis.SharedAddr's
//     address (under go test -short, go vet only); or
//   - a snippet of a test or example in the repository, marked by the line
//     <!-- snippet: FILE#FUNC --> just before the block: the block must be
//     the text of FUNC's declaration in FILE (relative to the repository
//     root, whichever Markdown file has the block; a FILE in otel/ or bench/ belongs to that module, whose own
//     go test runs FUNC, as CI does),
//     or, when FUNC's body has the lines "// README:begin" and
//     "// README:end", the text between them. FUNC must be a TestXxx, or an
//     ExampleXxx with an output comment, so that go test runs it.
//
// Anything else (a fragment) fails the test.

// readmeProgramTimeout bounds one program's run.
const readmeProgramTimeout = time.Minute

// readmeFiles returns the Markdown files whose Go blocks are checked,
// relative to root: README.md, then docs/*.md in name order.
func readmeFiles(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files := []string{"README.md"}
	for _, d := range docs { // Glob sorts
		files = append(files, "docs/"+filepath.Base(d))
	}
	return files, nil
}

// readmeBlock is one ```go block of a Markdown file.
type readmeBlock struct {
	file    string // the Markdown file, relative to the repository root
	line    int    // of the opening fence, 1-based
	code    string // between the fences
	snippet string // FILE#FUNC from a <!-- snippet: ... --> marker, or ""
}

var snippetMarker = regexp.MustCompile(`^<!--\s*snippet:\s*(\S+)\s*-->$`)

// readmeBlocks returns the ```go blocks of the Markdown text md of file,
// each with the snippet marker that precedes it, if any. A marker not
// followed by a Go block, and an unclosed block, are errors.
func readmeBlocks(file, md string) ([]readmeBlock, []error) {
	var blocks []readmeBlock
	var errs []error
	lines := strings.Split(md, "\n")
	marker, markerLine := "", 0
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if m := snippetMarker.FindStringSubmatch(line); m != nil {
			if marker != "" {
				errs = append(errs, fmt.Errorf("%s:%d: snippet marker not followed by a ```go block", file, markerLine))
			}
			marker, markerLine = m[1], i+1
			continue
		}
		if !strings.HasPrefix(line, "```") {
			if line != "" && marker != "" {
				errs = append(errs, fmt.Errorf("%s:%d: snippet marker not followed by a ```go block", file, markerLine))
				marker = ""
			}
			continue
		}
		// A fence: find its end, whatever the language.
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			errs = append(errs, fmt.Errorf("%s:%d: code block not closed", file, start+1))
			break
		}
		if lang := strings.TrimPrefix(line, "```"); lang == "go" {
			blocks = append(blocks, readmeBlock{file: file, line: start + 1, code: strings.Join(body, "\n") + "\n", snippet: marker})
		} else if marker != "" {
			errs = append(errs, fmt.Errorf("%s:%d: snippet marker not followed by a ```go block", file, markerLine))
		}
		marker = ""
	}
	if marker != "" {
		errs = append(errs, fmt.Errorf("%s:%d: snippet marker not followed by a ```go block", file, markerLine))
	}
	return blocks, errs
}

// checkProgram reports why b is not a complete program: package main with
// a func main. Its syntax is all it checks; go build does the rest.
func checkProgram(b readmeBlock) error {
	f, err := parser.ParseFile(token.NewFileSet(), "", b.code, parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("%s:%d: a ```go block must be a complete program (package main, func main) or carry a <!-- snippet: FILE#FUNC --> marker; this one does not parse as a Go file: %v", b.file, b.line, err)
	}
	if f.Name.Name != "main" {
		return fmt.Errorf("%s:%d: a ```go block must be a complete program: package %s is not main", b.file, b.line, f.Name.Name)
	}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "main" {
			return nil
		}
	}
	return fmt.Errorf("%s:%d: a ```go block must be a complete program: it has no func main", b.file, b.line)
}

// checkSnippet reports how b differs from the code its marker names, with
// files read from root.
func checkSnippet(root string, b readmeBlock) error {
	file, fn, ok := strings.Cut(b.snippet, "#")
	if !ok || file == "" || fn == "" {
		return fmt.Errorf("%s:%d: snippet marker %q: want FILE#FUNC", b.file, b.line, b.snippet)
	}
	if !strings.HasSuffix(file, "_test.go") || !(strings.HasPrefix(fn, "Test") || strings.HasPrefix(fn, "Example")) {
		return fmt.Errorf("%s:%d: snippet %s: must name a TestXxx or ExampleXxx in a _test.go file, which go test runs", b.file, b.line, b.snippet)
	}
	src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return fmt.Errorf("%s:%d: snippet %s: %w", b.file, b.line, b.snippet, err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("%s:%d: snippet %s: %w", b.file, b.line, b.snippet, err)
	}
	var decl *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == fn {
			decl = fd
		}
	}
	if decl == nil {
		return fmt.Errorf("%s:%d: snippet %s: no func %s in %s", b.file, b.line, b.snippet, fn, file)
	}
	if strings.HasPrefix(fn, "Example") {
		runs := false
		for _, ex := range doc.Examples(f) {
			if "Example"+ex.Name == fn && (ex.Output != "" || ex.EmptyOutput) {
				runs = true
			}
		}
		if !runs {
			return fmt.Errorf("%s:%d: snippet %s: the example has no output comment, so go test compiles it but never runs it", b.file, b.line, b.snippet)
		}
	}
	text := string(src[fset.Position(decl.Pos()).Offset:fset.Position(decl.End()).Offset])
	if _, rest, ok := strings.Cut(text, "// README:begin\n"); ok {
		region, _, ok := strings.Cut(rest, "// README:end")
		if !ok || strings.Contains(region, "// README:begin") {
			return fmt.Errorf("%s:%d: snippet %s: // README:begin without a matching // README:end", b.file, b.line, b.snippet)
		}
		text = region
	}
	want, got := normalizeCode(text), normalizeCode(b.code)
	if want != got {
		return fmt.Errorf("%s:%d: the block differs from %s in %s; the README should show:\n%s", b.file, b.line, fn, file, want)
	}
	return nil
}

// normalizeCode removes trailing blanks, leading and trailing empty lines,
// and the indentation all lines share.
func normalizeCode(s string) string {
	lines := strings.Split(strings.TrimRight(s, " \t\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	common := ""
	for i, l := range lines {
		l = strings.TrimRight(l, " \t")
		lines[i] = l
		if l == "" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, "\t"))]
		if common == "" || len(indent) < len(common) {
			common = indent
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, common)
	}
	return strings.Join(lines, "\n")
}

// moduleRoot is the repository's root, two levels above this package
// (tests/relock), where README.md is.
func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(wd))
	if _, err := os.Stat(filepath.Join(root, "README.md")); err != nil {
		t.Fatalf("no README.md two levels above the test's directory: %v", err)
	}
	return root
}

// packageDir is this package's directory, in the tests module.
func packageDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build the README's programs: %v", err)
	}
	return p
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// raceEnabled reports whether this test binary was built with -race: the
// programs are built the same way, so that they reuse the cached packages.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

func TestReadmeSnippets(t *testing.T) {
	root := moduleRoot(t)
	files, err := readmeFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	var programs []readmeBlock
	for _, file := range files {
		md, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		blocks, errs := readmeBlocks(file, string(md))
		for _, err := range errs {
			t.Error(err)
		}
		if file == "README.md" && len(blocks) == 0 {
			t.Fatal("README.md has no ```go block")
		}
		n, snippets := 0, 0
		for _, b := range blocks {
			if b.snippet != "" {
				snippets++
				if err := checkSnippet(root, b); err != nil {
					t.Error(err)
				}
				continue
			}
			if err := checkProgram(b); err != nil {
				t.Error(err)
				continue
			}
			programs = append(programs, b)
			n++
		}
		t.Logf("%s: %d Go blocks, %d programs, %d snippets of tests and examples", file, len(blocks), n, snippets)
	}
	if len(programs) == 0 {
		return
	}

	addr, redisErr := testredis.SharedAddr()

	// The programs go in a directory of the tests module, which requires
	// every adapter and client, so that they build with its go.mod and
	// go.sum and the module cache, offline. Its name starts with "_":
	// ./... patterns (go vet ./..., go test ./...) skip it, should one be
	// left behind.
	pkgDir := packageDir(t)
	dir, err := os.MkdirTemp(pkgDir, "_readme-snippets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "bin")
	var pkgs []string
	for _, p := range programs {
		name := programDir(p)
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		code := strings.ReplaceAll(p.code, "127.0.0.1:6379", addr)
		if err := os.WriteFile(filepath.Join(dir, name, "main.go"), []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, "./"+filepath.Base(dir)+"/"+name)
	}
	goCmd := goTool(t)
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = pkgDir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s(the directory name FILE_lineN names the Markdown file and line of the block)", args[0], err, out)
		}
		t.Logf("go %s of %d programs: %v", args[0], len(pkgs), time.Since(start).Round(time.Millisecond))
	}
	buildFlags := []string{}
	if raceEnabled() {
		buildFlags = append(buildFlags, "-race")
	}
	run(append(append([]string{"vet"}, buildFlags...), pkgs...)...)
	// Linking a binary per program takes seconds of the quick run's CPU:
	// go vet has type-checked them, and the full run links and runs them.
	testredis.SkipShort(t, "links and runs the README's programs (go vet has checked them)")
	run(append(append([]string{"build", "-ldflags=-s -w", "-o", bin + string(filepath.Separator)}, buildFlags...), pkgs...)...)

	if redisErr != nil {
		if testredis.Required() {
			t.Fatalf("the README's programs built; running them needs Redis: %v", redisErr)
		}
		t.Skipf("the README's programs built; not run: %v", redisErr)
	}
	for _, p := range programs {
		name := programDir(p)
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), readmeProgramTimeout)
			defer cancel()
			exe := filepath.Join(bin, name)
			if runtime.GOOS == "windows" {
				exe += ".exe"
			}
			cmd := exec.CommandContext(ctx, exe)
			cmd.Dir = dir
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("%s:%d: the program did not end within %v; output:\n%s", p.file, p.line, readmeProgramTimeout, out.String())
			}
			if err != nil {
				t.Fatalf("%s:%d: the program failed (%v) against Redis at %s; output:\n%s", p.file, p.line, err, addr, out.String())
			}
			t.Logf("%s:%d: output:\n%s", p.file, p.line, out.String())
		})
	}
}

// programDir names the directory, and the subtest, of program p: its
// Markdown file without ".md", with "_" for "/", and its line, as in
// README_line12 or docs_cli_line40.
func programDir(p readmeBlock) string {
	base := strings.ReplaceAll(strings.TrimSuffix(p.file, ".md"), "/", "_")
	return fmt.Sprintf("%s_line%d", base, p.line)
}

// TestReadmeChecks feeds the block checks a README of each kind of block
// and checks what they accept and reject.
func TestReadmeChecks(t *testing.T) {
	root := moduleRoot(t)
	md := strings.Join([]string{
		"# t", "",
		"```go", "package main", "", "func main() {}", "```", // a program
		"```go", "lock, err := locker.Obtain(ctx, \"k\", ttl)", "```", // a fragment
		"```go", "package lib", "func F() {}", "```", // not main
		"<!-- snippet: tests/relock/example_readme_test.go#Example_newQuorum -->", "",
		"```go", "locker, err := relock.New(nil)", "```", // a snippet that differs
		"<!-- snippet: readme_test.go#TestReadmeChecks -->",
		"```go", "func TestReadmeChecks(t *testing.T) {}", "```", // differs too
		"<!-- snippet: readme_test.go#TestNoSuchThing -->",
		"```go", "x", "```", // no such func
		"<!-- snippet: readme_test.go#readmeBlocks -->",
		"```go", "x", "```", // neither a test nor an example
		"<!-- snippet: example_test.go#ExampleNowhere -->",
		"```sh", "go test", "```", // a marker before a block that is not Go
		"```sh", "echo", // never closed
	}, "\n")
	var goLines []int
	stray := 0
	for i, l := range strings.Split(md, "\n") {
		if l == "```go" {
			goLines = append(goLines, i+1)
		}
		if strings.Contains(l, "ExampleNowhere") {
			stray = i + 1
		}
	}
	blocks, errs := readmeBlocks("README.md", md)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), fmt.Sprintf("README.md:%d: snippet marker", stray)) || !strings.Contains(errs[1].Error(), "not closed") {
		t.Errorf("readmeBlocks errors = %v; want the stray marker at line %d and the unclosed block", errs, stray)
	}
	var at []int
	for _, b := range blocks {
		at = append(at, b.line)
	}
	if fmt.Sprint(at) != fmt.Sprint(goLines) || blocks[0].code != "package main\n\nfunc main() {}\n" || blocks[3].snippet != "tests/relock/example_readme_test.go#Example_newQuorum" {
		t.Fatalf("blocks %+v; want them at lines %v", blocks, goLines)
	}
	if err := checkProgram(blocks[0]); err != nil {
		t.Errorf("a complete program was rejected: %v", err)
	}
	for _, b := range blocks[1:3] {
		if err := checkProgram(b); err == nil {
			t.Errorf("README.md:%d %q accepted as a program", b.line, b.code)
		}
	}
	for _, b := range blocks[3:] {
		if err := checkSnippet(root, b); err == nil {
			t.Errorf("README.md:%d snippet %s %q accepted", b.line, b.snippet, b.code)
		}
	}

	// The region between the README markers of Example_newQuorum matches,
	// whatever the indentation.
	src, err := os.ReadFile(filepath.Join(root, "tests", "relock", "example_readme_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	_, region, _ := strings.Cut(string(src), "// README:begin\n")
	region, _, _ = strings.Cut(region, "// README:end")
	// As the README shows it: one tab less, as gofmt indents a function body.
	lines := strings.Split(region, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	b := readmeBlock{file: "README.md", line: 1, code: strings.Join(lines, "\n"), snippet: "tests/relock/example_readme_test.go#Example_newQuorum"}
	if err := checkSnippet(root, b); err != nil {
		t.Errorf("the example's own region was rejected: %v", err)
	}
	b.code = strings.Replace(b.code, "10*time.Second", "time.Minute", 1)
	if err := checkSnippet(root, b); err == nil {
		t.Error("a region with one edit was accepted")
	}
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	slugDrop  = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// mdAnchors returns the anchors GitHub gives the headings of md: lower
// case, punctuation dropped, spaces as hyphens, "-1", "-2", ... after a
// repeated one. Headings inside code blocks do not count.
func mdAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		m := mdHeading.FindStringSubmatch(line)
		if fenced || m == nil {
			continue
		}
		slug := strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// TestReadmeLinks checks the relative links of README.md and docs/*.md:
// each names a file or directory of the repository, and a #fragment into
// a Markdown file names one of its headings. Sections move between these
// files; a link left behind fails here.
func TestReadmeLinks(t *testing.T) {
	root := moduleRoot(t)
	files, err := readmeFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]map[string]bool{} // by path relative to root
	anchorsOf := func(rel string) map[string]bool {
		if a, ok := anchors[rel]; ok {
			return a
		}
		md, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		anchors[rel] = mdAnchors(string(md))
		return anchors[rel]
	}
	links := 0
	for _, file := range files {
		md, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(md), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				path, frag, _ := strings.Cut(target, "#")
				rel := file
				if path != "" {
					rel = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(file), filepath.FromSlash(path))))
					if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
						t.Errorf("%s:%d: link %s: no file %s", file, i+1, target, rel)
						continue
					}
				}
				if frag != "" && strings.HasSuffix(rel, ".md") && !anchorsOf(rel)[frag] {
					t.Errorf("%s:%d: link %s: %s has no heading with anchor #%s", file, i+1, target, rel, frag)
				}
			}
		}
	}
	t.Logf("%d relative links in %d files", links, len(files))
}
