package main

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	unreleasedHeading = regexp.MustCompile(`^## \[Unreleased\]\s*$`)
	versionHeading    = regexp.MustCompile(`^## \[`)
	linkRef           = regexp.MustCompile(`^\[[^\]]+\]: `)
)

// ReleaseChangelog turns the "## [Unreleased]" section of a Keep a
// Changelog file into the section of version v (vX.Y.Z, shown as X.Y.Z)
// dated date, under a new empty Unreleased section, and updates the link
// references at the bottom: Unreleased compares v with HEAD, and v
// compares prev with v (or points at v's tag when prev is "", the first
// release). repoURL is the repository's web address.
func ReleaseChangelog(text, v, prev, date, repoURL string) (string, error) {
	lines := strings.Split(text, "\n")
	u := -1
	for i, l := range lines {
		if unreleasedHeading.MatchString(l) {
			u = i
			break
		}
	}
	if u < 0 {
		return "", fmt.Errorf("CHANGELOG.md has no \"## [Unreleased]\" heading")
	}
	end := len(lines)
	for i := u + 1; i < len(lines); i++ {
		if versionHeading.MatchString(lines[i]) || linkRef.MatchString(lines[i]) {
			end = i
			break
		}
	}
	body := trimBlank(lines[u+1 : end])
	if len(body) == 0 {
		return "", fmt.Errorf("CHANGELOG.md: the Unreleased section is empty: say what %s changes before releasing it", v)
	}
	num := strings.TrimPrefix(v, "v")
	for _, l := range lines {
		if strings.HasPrefix(l, "## ["+num+"]") {
			return "", fmt.Errorf("CHANGELOG.md already has a section for %s", num)
		}
	}
	var out []string
	out = append(out, lines[:u+1]...)
	out = append(out, "", fmt.Sprintf("## [%s] - %s", num, date), "")
	out = append(out, body...)
	out = append(out, "")
	out = append(out, trimLeadingBlank(lines[end:])...)

	unreleasedLink := fmt.Sprintf("[Unreleased]: %s/compare/%s...HEAD", repoURL, v)
	versionLink := fmt.Sprintf("[%s]: %s/releases/tag/%s", num, repoURL, v)
	if prev != "" {
		versionLink = fmt.Sprintf("[%s]: %s/compare/%s...%s", num, repoURL, prev, v)
	}
	found := false
	for i, l := range out {
		if strings.HasPrefix(l, "[Unreleased]: ") {
			out = append(out[:i], append([]string{unreleasedLink, versionLink}, out[i+1:]...)...)
			found = true
			break
		}
	}
	if !found {
		for len(out) > 0 && out[len(out)-1] == "" {
			out = out[:len(out)-1]
		}
		out = append(out, "", unreleasedLink, versionLink, "")
	}
	return strings.Join(out, "\n"), nil
}

func trimBlank(ls []string) []string {
	ls = trimLeadingBlank(ls)
	for len(ls) > 0 && strings.TrimSpace(ls[len(ls)-1]) == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

func trimLeadingBlank(ls []string) []string {
	for len(ls) > 0 && strings.TrimSpace(ls[0]) == "" {
		ls = ls[1:]
	}
	return ls
}
