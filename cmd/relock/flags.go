package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseFlags parses args with fs, flags before and after the first
// positional argument (KEY), and returns the positional arguments. "--"
// ends the flags. A flag error is returned as one line, without usage: fs
// prints nothing. -h gives flag.ErrHelp, for the caller to print usage.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rest := fs.Args()
	if len(rest) < 2 || !strings.HasPrefix(rest[1], "-") || rest[1] == "-" {
		return rest, nil
	}
	key := rest[0]
	if rest[1] == "--" {
		return append([]string{key, "--"}, rest[2:]...), nil
	}
	if err := fs.Parse(rest[1:]); err != nil {
		return nil, err
	}
	return append([]string{key, "--"}, fs.Args()...), nil
}

// flagError is the one-line report of a bad command line.
func flagError(name string, err error) error {
	return fmt.Errorf("%v (relock %s -h lists the flags)", err, name)
}
