package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/mcptasks/mcptasks"
)

func init() {
	register(command{
		Name:    "postgres",
		Summary: "postgres create-table [-print] URL: print or apply the idempotent DDL of the task table",
		Run:     postgresMain,
	})
}

// postgresDDL is set by postgres_ddl.go in builds with -tags postgres.
var postgresDDL func(schema, table string) ([]string, error)

const postgresUsage = `usage: mcptasks postgres create-table [-print] postgres://USER@HOST:PORT/DB[?schema=…&table=…]

Creates the task table, its index and its schema-version comment (docs/postgres.md) in the
database the URL names, if missing; safe to run twice, and from several replicas at once.
With -print it only prints the statements (connecting to nothing), for a migration tool or a
DBA to run as the table's owner. Needs a binary built with -tags postgres.`

func postgresMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, postgresUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "create-table" {
		return usagef("expected: create-table [-print] URL")
	}
	fs := flag.NewFlagSet("postgres create-table", flag.ContinueOnError)
	print := fs.Bool("print", false, "print the DDL instead of applying it")
	if err := parseFlagsN(fs, postgresUsage, args[1:], 1, stdout); err != nil {
		return err
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return usagef("the URL must be postgres://… or postgresql://…")
	}
	q := u.Query()
	if *print {
		if postgresDDL == nil {
			return errors.New("this binary has no PostgreSQL backend: build with -tags postgres")
		}
		stmts, err := postgresDDL(q.Get("schema"), q.Get("table"))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, strings.Join(stmts, ";\n\n")+";")
		return nil
	}
	q.Set("create_table", "true")
	q.Set("sweep", "0")
	u.RawQuery = q.Encode()
	b, err := mcptasks.OpenBackend(ctx, u.String())
	if err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "the task table is ready (schema %s, table %s)\n", orDefault(q.Get("schema"), "public"), orDefault(q.Get("table"), "mcptasks_tasks"))
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
