package scripts

import (
	"embed"
	"regexp"
	"strings"
	"testing"
)

//go:embed *.lua
var luaFiles embed.FS

// The files that hold the waiter-queue protocol, and what every script
// built on them must start with.
const (
	handoverFile = "queue_handover.lua"
	commonFile   = "queue_common.lua"
)

var localFunction = regexp.MustCompile(`(?m)^\s*local function ([A-Za-z_][A-Za-z0-9_]*)`)

// The waiter-queue protocol is written once: each piece of it that the
// mutex, the semaphore and the read-write lock once copied is found in
// the shared files only. A script that grows its own copy again (a fencing
// counter started from the clock, a hand-over message, a join that appends
// to the queue, a waiter key parsed or written) fails here.
func TestQueueProtocolWrittenOnce(t *testing.T) {
	// Each fragment is in the shared file named, and in no other .lua file.
	only := map[string]string{
		`'%06d'`:             handoverFile, // a fencing counter started from TIME
		`'INCR'`:             handoverFile, // the next fencing number
		`'PUBLISH'`:          handoverFile, // the hand-over announcement
		`(:?f?)(.*)$'`:       handoverFile, // parsing a waiter key's want
		`'RPUSH'`:            commonFile,   // a join
		`'SET', wkey, want`:  commonFile,   // a place written or renewed
		`'PEXPIRE', queue`:   commonFile,   // the queue outlives its waiter keys
		`deadline) - now`:    commonFile,
		`'XX')`:              commonFile,   // a renewal rewrites a live place only
		`want .. ':f'`:       commonFile,   // a want that asks for a fencing number
		`1000 + math.floor(`: handoverFile, // the server's clock in ms
		`{3, pttl, 0`:        commonFile,   // a lapsed place
		`{2, pttl, 0`:        commonFile,   // queued
	}
	entries, err := luaFiles.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		b, err := luaFiles.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		for frag, home := range only {
			if strings.Contains(src, frag) {
				seen[frag] = true
				if e.Name() != home {
					t.Errorf("%s has %q, a piece of the waiter-queue protocol that only %s may hold", e.Name(), frag, home)
				}
			}
		}
		// The shared functions are defined in the shared files only.
		if e.Name() != handoverFile && e.Name() != commonFile {
			for _, m := range localFunction.FindAllStringSubmatch(src, -1) {
				if strings.HasPrefix(m[1], "queue") {
					t.Errorf("%s defines %s: the queue* functions belong in %s or %s", e.Name(), m[1], handoverFile, commonFile)
				}
			}
		}
	}
	for frag := range only {
		if !seen[frag] {
			t.Errorf("%q is in no .lua file: update this test with the protocol", frag)
		}
	}
}

// Every script that queues or hands over is its primitive's file behind
// the shared prefix, and runs with exactly one definition of each
// function: a local function defined twice in one chunk (a copy that
// shadows the shared one) fails here.
func TestScriptsBuiltOnQueuePrefix(t *testing.T) {
	handover := mustRead(t, handoverFile)
	whole := handover + mustRead(t, commonFile)
	for name, s := range map[string]*Script{
		"Obtain": Obtain, "SemObtain": SemObtain, "SemRelease": SemRelease, "SemLimit": SemLimit,
		"SemRefresh": SemRefresh, "SemPTTL": SemPTTL, "SemInspect": SemInspect,
		"RWObtain": RWObtain, "RWRelease": RWRelease, "RWRefresh": RWRefresh, "RWPTTL": RWPTTL, "RWInspect": RWInspect,
	} {
		if !strings.HasPrefix(s.Src, whole) {
			t.Errorf("%s does not start with %s and %s", name, handoverFile, commonFile)
		}
	}
	// The release of a lock gets the hand-over half alone, after its short
	// path (nobody waits), which thus creates no closure.
	if strings.Count(Release.Src, handover) != 1 || strings.Contains(Release.Src, mustRead(t, commonFile)) {
		t.Errorf("Release does not hold %s, once, without %s", handoverFile, commonFile)
	}
	short := Release.Src[:strings.Index(Release.Src, handover)]
	if regexp.MustCompile(`\bfunction\b`).MatchString(short) || strings.Contains(Release.Src, handoverMark) ||
		!strings.Contains(short, "redis.call('DEL', lock) -- nobody waits") {
		t.Errorf("release.lua's short path is not before %s, or defines a function:\n%s", handoverFile, short)
	}
	for _, s := range []*Script{Release, Obtain, SemObtain, SemRelease, SemLimit, RWObtain, RWRelease, RWInspect} {
		defined := map[string]int{}
		for _, m := range localFunction.FindAllStringSubmatch(s.Src, -1) {
			defined[m[1]]++
		}
		for fn, n := range defined {
			if n > 1 {
				t.Errorf("script %.40q... defines %s %d times", s.Src[len(handover):], fn, n)
			}
		}
		// Each queue* function it calls is defined before the call, in the prefix.
		for _, m := range regexp.MustCompile(`\b(queue[A-Z][A-Za-z]*)\(`).FindAllStringSubmatchIndex(s.Src, -1) {
			fn := s.Src[m[2]:m[3]]
			def := strings.Index(s.Src, "local function "+fn+"(")
			if def < 0 || def > m[0] {
				t.Errorf("%s is called before it is defined (or never defined) in a script", fn)
			}
		}
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := luaFiles.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
