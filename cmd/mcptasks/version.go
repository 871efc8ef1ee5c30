package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/mcptasks/mcptasks"
)

func init() {
	register(command{
		Name:    "version",
		Summary: "print the module version and the store backends compiled in",
		Run:     versionMain,
	})
}

const versionUsage = `usage: mcptasks version

Prints the module version this binary was built from ("(devel)" for a build
without version control information) and the store URL schemes it was built
with: memory always, the others with -tags redis, dynamodb, postgres.`

func versionMain(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, versionUsage, args, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mcptasks %s\nbackends: %s\n", moduleVersion(), strings.Join(mcptasks.Backends(), ", "))
	return nil
}

// moduleVersion is the main module's version: a tag or pseudo-version
// when go build could stamp one, else "(devel)".
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
