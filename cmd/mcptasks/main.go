// Command mcptasks serves a demo MCP server with durable tasks, and hosts
// the project's other tools as subcommands.
//
//	mcptasks serve [flags]      streamable-HTTP MCP server with demo tools
//	mcptasks version            module version and compiled-in backends
//	mcptasks help [command]
//
// Each subcommand lives in its own file and registers itself from init.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
)

// A command is one subcommand. Run gets the arguments after the command's
// name and a context cancelled on the first SIGINT or SIGTERM (see
// forceContext for the second).
type command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

// register adds a subcommand; it panics on a duplicate name.
func register(c command) {
	if _, dup := commands[c.Name]; dup {
		panic("mcptasks: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// Exit statuses, the same for every subcommand.
const (
	exitOK          = 0 // done, or help printed
	exitFailure     = 1 // a runtime failure: bad store URL, store unreachable, listen failed, …
	exitUsage       = 2 // a command line that cannot run: bad flag, unknown command, wrong arguments
	exitTasksFailed = 3 // serve stopped, but tasks still running at shutdown were marked failed
)

const exitStatusHelp = `exit status: 0 done (or help), 1 a runtime failure (bad store URL, store
unreachable, listen failed), 2 a usage error (bad flag, unknown command or
arguments), 3 serve stopped but running tasks were marked failed at shutdown.`

func main() {
	// signal.NotifyContext would swallow the second signal; serve uses it
	// to cut its drain short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, stop := context.WithCancel(context.Background())
	force, stopNow := context.WithCancel(context.Background())
	go func() {
		<-sigs
		stop()
		<-sigs
		stopNow()
	}()
	os.Exit(run(context.WithValue(ctx, forceKey{}, force), os.Args[1:], os.Stdout, os.Stderr))
}

type forceKey struct{}

// forceContext is done at the second SIGINT or SIGTERM (never in tests
// that call a command in process): what the first one let finish, such as
// serve's drain, must end now.
func forceContext(ctx context.Context) context.Context {
	if f, ok := ctx.Value(forceKey{}).(context.Context); ok {
		return f
	}
	return context.Background()
}

// run dispatches to a subcommand and returns its exit status (exitOK, …):
// help goes to stdout, a usage error to stderr with a pointer to the
// command's help.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		switch len(args) {
		case 1:
			usage(stdout)
			return exitOK
		case 2:
			if c, ok := commands[args[1]]; ok {
				return exitCode(c, c.Run(ctx, []string{"-h"}, stdout, stderr), stderr)
			}
			fmt.Fprintf(stderr, "mcptasks help: unknown command %q\n", args[1])
		default:
			fmt.Fprintln(stderr, "mcptasks help: give at most one command")
		}
		usage(stderr)
		return exitUsage
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mcptasks: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return exitCode(c, c.Run(ctx, args[1:], stdout, stderr), stderr)
}

// exitCode prints err, if any, each line prefixed "mcptasks COMMAND: ",
// and returns its exit status.
func exitCode(c command, err error, stderr io.Writer) int {
	var ue usageError
	var se statusError
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	for line := range strings.Lines(err.Error()) { // errors.Join makes several
		fmt.Fprintf(stderr, "mcptasks %s: %s\n", c.Name, trimPackage(strings.TrimSuffix(line, "\n")))
	}
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "Run 'mcptasks help %s' for its usage.\n", c.Name)
		return exitUsage
	case errors.As(err, &se):
		return se.code
	default:
		return exitFailure
	}
}

// trimPackage drops the prefixes of this module's packages ("mcptasks: ",
// "taskrouter: ", …) from an error line, which would double the command's.
func trimPackage(msg string) string {
	for {
		pkg, rest, ok := strings.Cut(msg, ": ")
		if !ok || !slices.Contains([]string{"mcptasks", "taskrouter", "taskstore"}, pkg) {
			return msg
		}
		msg = rest
	}
}

// cmdLog is the running command's logger, for libraries that log on
// their own (redis_log.go reads it); serve sets it.
var cmdLog atomic.Pointer[slog.Logger]

// statusError is a failure with an exit status of its own (exitTasksFailed).
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string { return e.err.Error() }
func (e statusError) Unwrap() error { return e.err }

// usageError is a command line a command cannot run (exit status 2), as
// opposed to a failure while running (exit status 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef is a usageError with a formatted message.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// parseFlags parses the flags of a subcommand that takes no positional
// argument; see parseFlagsN.
func parseFlags(fs *flag.FlagSet, head string, args []string, stdout io.Writer) error {
	return parseFlagsN(fs, head, args, 0, stdout)
}

// parseFlagsN parses a subcommand's flags, followed by exactly n
// positional arguments. -h or --help prints head and the flags to stdout
// and returns flag.ErrHelp; a bad flag or another number of arguments is a
// usageError. The flag package is kept from printing anything itself, so
// that help goes to stdout and errors to stderr, once.
func parseFlagsN(fs *flag.FlagSet, head string, args []string, n int, stdout io.Writer) error {
	if err := parseOnce(fs, head, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != n {
		// Not echoed: a stray argument can be half of a mistyped secret.
		if n == 0 {
			return usagef("%d unexpected argument(s) after the flags", fs.NArg())
		}
		return usagef("want %d argument(s) after the flags, got %d", n, fs.NArg())
	}
	return nil
}

// parseOnce is one fs.Parse with parseFlagsN's handling of help and errors.
func parseOnce(fs *flag.FlagSet, head string, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, strings.TrimRight(head, "\n"))
		fmt.Fprintln(stdout, "\nflags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return flag.ErrHelp
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// parseFlagsArgs parses a subcommand's flags mixed with its positional
// arguments (flags may follow them, as in "tasks get ID --json"; "--"
// ends the flags) and returns the positional ones.
func parseFlagsArgs(fs *flag.FlagSet, head string, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := parseOnce(fs, head, args, stdout); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mcptasks <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-24s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\nRun 'mcptasks help <command>' for a command's flags.")
	fmt.Fprintln(w, "\n"+exitStatusHelp)
}
