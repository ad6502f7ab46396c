package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

// WriteProxy writes a file-based module proxy (GOPROXY=file://dir) that
// serves every released module of the repository at version v, as the go
// command would get it from a tag: the module's tracked files (their
// content in the work tree), no files of nested modules, and a go.mod
// whose requirements of the repository's modules are set to v. It returns
// the modules it wrote.
//
// Layout (Go modules reference, "GOPROXY protocol"):
// dir/<escaped module path>/@v/{list,<v>.info,<v>.mod,<v>.zip}.
func (r *Repo) WriteProxy(dir, v string, t time.Time) ([]*Module, error) {
	tracked, err := gitFiles(r.Root, "ls-files", "-z")
	if err != nil {
		return nil, err
	}
	var wrote []*Module
	for _, m := range r.Released() {
		gomod, _, err := r.SetVersion(m, v)
		if err != nil {
			return nil, err
		}
		files, err := moduleFiles(r.Root, m.Dir, tracked, gomod)
		if err != nil {
			return nil, err
		}
		escPath, err := module.EscapePath(m.Path)
		if err != nil {
			return nil, err
		}
		escVer, err := module.EscapeVersion(v)
		if err != nil {
			return nil, err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(escPath), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return nil, err
		}
		var zbuf bytes.Buffer
		if err := zip.Create(&zbuf, module.Version{Path: m.Path, Version: v}, files); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Dir, err)
		}
		info, err := json.Marshal(struct {
			Version string
			Time    time.Time
		}{v, t.UTC().Truncate(time.Second)})
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(vdir, escVer+".zip"), zbuf.Bytes()); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(vdir, escVer+".mod"), gomod); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(vdir, escVer+".info"), append(info, '\n')); err != nil {
			return nil, err
		}
		if err := addToList(filepath.Join(vdir, "list"), v); err != nil {
			return nil, err
		}
		wrote = append(wrote, m)
	}
	return wrote, nil
}

// moduleFiles returns the zip.Files of the module in dir: the tracked
// files under it that exist in the work tree, paths relative to dir, with
// go.mod's content replaced by gomod. zip.Create drops the files of
// nested modules and vendor directories.
func moduleFiles(root, dir string, tracked []string, gomod []byte) ([]zip.File, error) {
	prefix := ""
	if dir != "." {
		prefix = dir + "/"
	}
	var files []zip.File
	for _, f := range tracked {
		if !strings.HasPrefix(f, prefix) {
			continue
		}
		rel := strings.TrimPrefix(f, prefix)
		if rel == "go.mod" {
			files = append(files, dataFile{name: rel, data: gomod})
			continue
		}
		full := filepath.Join(root, filepath.FromSlash(f))
		info, err := os.Lstat(full)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet committed
			}
			return nil, err
		}
		files = append(files, diskFile{name: rel, full: full, info: info})
	}
	return files, nil
}

type diskFile struct {
	name, full string
	info       fs.FileInfo
}

func (f diskFile) Path() string                 { return f.name }
func (f diskFile) Lstat() (fs.FileInfo, error)  { return f.info, nil }
func (f diskFile) Open() (io.ReadCloser, error) { return os.Open(f.full) }

type dataFile struct {
	name string
	data []byte
}

func (f dataFile) Path() string                 { return f.name }
func (f dataFile) Lstat() (fs.FileInfo, error)  { return dataInfo(f), nil }
func (f dataFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type dataInfo dataFile

func (fi dataInfo) Name() string       { return filepath.Base(fi.name) }
func (fi dataInfo) Size() int64        { return int64(len(fi.data)) }
func (fi dataInfo) Mode() fs.FileMode  { return 0o644 }
func (fi dataInfo) ModTime() time.Time { return time.Time{} }
func (fi dataInfo) IsDir() bool        { return false }
func (fi dataInfo) Sys() any           { return nil }

func writeFile(name string, data []byte) error {
	return os.WriteFile(name, data, 0o644)
}

// addToList adds v to the proxy's list file of a module (one version a
// line), keeping the versions already there.
func addToList(name, v string) error {
	old, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var vs []string
	for l := range strings.SplitSeq(string(old), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != v {
			vs = append(vs, l)
		}
	}
	vs = append(vs, v)
	semver.Sort(vs)
	return writeFile(name, []byte(strings.Join(vs, "\n")+"\n"))
}
