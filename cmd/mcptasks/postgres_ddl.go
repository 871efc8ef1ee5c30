//go:build postgres

package main

import "github.com/mcptasks/mcptasks"

func init() {
	postgresDDL = func(schema, table string) ([]string, error) {
		return mcptasks.PostgresDDL(mcptasks.PostgresOptions{Schema: schema, Table: table})
	}
}
