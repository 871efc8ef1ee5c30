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
		Summary: "postgres create-table [-print] URL | recount URL: create or migrate the task table (or print the DDL); repair its counts by status",
		Run:     postgresMain,
	})
}

// postgresDDL is set by postgres_ddl.go in builds with -tags postgres.
var postgresDDL func(schema, table string) ([]string, error)

const postgresUsage = `usage: mcptasks postgres create-table [-print] postgres://USER@HOST:PORT/DB[?schema=…&table=…]
       mcptasks postgres recount postgres://USER@HOST:PORT/DB[?schema=…&table=…]

create-table creates the task table, its indexes, the tables beside it and its schema-version
comment (docs/postgres.md) in the database the URL names, if missing, and migrates a table of
an earlier schema in place (schema 2 to 3: each task's status read from its document, and
counted); safe to run twice, and from several replicas at once. With -print it only prints
the statements (connecting to nothing), for a migration tool or a DBA to run as the table's
owner.

recount sets each task's status to the one its document holds and counts the tasks by status
again, holding off writers while it reads the whole table: run it once the last replica of
an earlier release has stopped, since those replicas wrote without keeping the status and its
counts. Both need a binary built with -tags postgres.`

func postgresMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, postgresUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "create-table" && args[0] != "recount") {
		return usagef("expected: create-table [-print] URL, or recount URL")
	}
	fs := flag.NewFlagSet("postgres "+args[0], flag.ContinueOnError)
	var print *bool
	if args[0] == "create-table" {
		print = fs.Bool("print", false, "print the DDL instead of applying it")
	}
	if err := parseFlagsN(fs, postgresUsage, args[1:], 1, stdout); err != nil {
		return err
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return usagef("the URL must be postgres://… or postgresql://…")
	}
	q := u.Query()
	schema, table := orDefault(q.Get("schema"), "public"), orDefault(q.Get("table"), "mcptasks_tasks")
	if args[0] == "recount" {
		return postgresRecount(ctx, u, stdout, schema, table)
	}
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
	fmt.Fprintf(stdout, "the task table is ready (schema %s, table %s)\n", schema, table)
	return nil
}

// statusRecounter is the PostgreSQL backend's repair of the counts by status.
type statusRecounter interface {
	RecountStatus(ctx context.Context) (int64, error)
}

func postgresRecount(ctx context.Context, u *url.URL, stdout io.Writer, schema, table string) error {
	q := u.Query()
	q.Set("sweep", "0")
	u.RawQuery = q.Encode()
	b, err := mcptasks.OpenBackend(ctx, u.String())
	if err != nil {
		return err
	}
	defer b.Close()
	r, ok := b.(statusRecounter)
	if !ok {
		return errors.New("this backend has no status counts to repair")
	}
	n, err := r.RecountStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d tasks had a stale status; the counts by status are recounted (schema %s, table %s)\n", n, schema, table)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
