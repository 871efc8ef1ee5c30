package mcptasks_test

import (
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTaggedAPIIsDocumented: go doc reads no build tags, so it cannot see
// a declaration in a tagged file. Tagged files therefore declare no
// exported type, constant or variable (those belong in an untagged file),
// and the package doc lists each exported function they declare, with its
// signature as written.
func TestTaggedAPIIsDocumented(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var pkgDoc string
	var funcs []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil {
			pkgDoc += f.Doc.Text()
		}
		if !hasBuildTag(f) {
			continue
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					d.Doc, d.Body = nil, nil
					var b strings.Builder
					if err := printer.Fprint(&b, fset, d); err != nil {
						t.Fatal(err)
					}
					funcs = append(funcs, b.String())
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							t.Errorf("%s declares type %s behind a build tag: go doc does not show it", name, s.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								t.Errorf("%s declares %s behind a build tag: go doc does not show it", name, n)
							}
						}
					}
				}
			}
		}
	}
	slices.Sort(funcs)
	if len(funcs) < 4 {
		t.Fatalf("found only these tagged functions, is the parse right?\n%s", strings.Join(funcs, "\n"))
	}
	for _, fn := range funcs {
		if !strings.Contains(pkgDoc, fn) {
			t.Errorf("the package doc does not list\n\t%s", fn)
		}
	}
}

func hasBuildTag(f *ast.File) bool {
	for _, g := range f.Comments {
		if g.Pos() > f.Package {
			break
		}
		for _, c := range g.List {
			if constraint.IsGoBuild(c.Text) {
				return true
			}
		}
	}
	return false
}
