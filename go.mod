module github.com/mcptasks/mcptasks

go 1.26.0
