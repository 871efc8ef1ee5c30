package taskadmin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The HTML pages: html/template escapes every value for where it lands, so
// task messages, variables, owners and tool names render as text. No value
// goes into a script, a style or an event attribute; the one script and
// the one style are constants, allowed by their hashes in the
// Content-Security-Policy.

// pageScript reloads the page every data-refresh seconds while the
// checkbox #autorefresh is ticked (remembered in localStorage), but not
// while a task is selected or a text field has the focus, and makes
// #selectall tick every task's box.
const pageScript = `(function () {
  var every = Number(document.body.getAttribute("data-refresh")), box = document.getElementById("autorefresh"), timer;
  function stored() { try { return localStorage.getItem("mcptasks-admin-refresh"); } catch (e) { return null; } }
  function store(v) { try { localStorage.setItem("mcptasks-admin-refresh", v); } catch (e) {} }
  function busy() {
    var a = document.activeElement;
    return document.querySelector("input[name=ref]:checked") || (a && (a.tagName === "INPUT" && a.type !== "checkbox" || a.tagName === "SELECT"));
  }
  function schedule() {
    clearTimeout(timer);
    if (box && box.checked) timer = setTimeout(function () { if (busy()) schedule(); else location.reload(); }, every * 1000);
  }
  if (box && every > 0) {
    box.checked = stored() !== "off";
    box.addEventListener("change", function () { store(box.checked ? "on" : "off"); schedule(); });
    schedule();
  }
  var all = document.getElementById("selectall");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=ref]").forEach(function (c) { c.checked = all.checked; });
  });
})();`

const pageStyle = `body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { background: #223; color: #eee; padding: .5em 1em; display: flex; gap: 1.5em; align-items: center; flex-wrap: wrap; }
header a { color: #9cf; } header a.here { color: #fff; font-weight: bold; }
header .ro { background: #a60; color: #fff; padding: 0 .4em; border-radius: 3px; }
main { padding: 1em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono, pre { font-family: ui-monospace, monospace; font-size: 12px; }
pre { background: #f6f6f8; padding: .5em; overflow: auto; max-height: 30em; white-space: pre-wrap; word-break: break-all; margin: 0; }
.status { padding: 0 .4em; border-radius: 3px; white-space: nowrap; }
.working { background: #def; } .input_required { background: #ffd; } .completed { background: #dfd; }
.failed { background: #fdd; } .cancelled { background: #eee; }
.bad { color: #b00; } .note { color: #666; }
form.filter { display: flex; gap: .6em; flex-wrap: wrap; align-items: end; margin-bottom: 1em; }
form.filter label { display: flex; flex-direction: column; font-size: 12px; }
.msg { max-width: 40em; overflow-wrap: anywhere; }`

// page is what every template gets: the layout's needs and the page's data.
type page struct {
	Title    string
	Nav      string
	Base     string // relative path to the handler's root: "./" or "../"
	Refresh  int    // seconds between reloads; 0 for none
	ReadOnly bool
	Now      time.Time
	Data     any
	Script   template.JS
	Style    template.CSS
}

// Statuses are the five statuses in the order the pages show them.
func (page) Statuses() []taskstore.Status {
	return []taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired, taskstore.StatusCompleted,
		taskstore.StatusFailed, taskstore.StatusCancelled}
}

// Ago is how long before the page t was, rounded for reading.
func (p page) Ago(t time.Time) string {
	d := p.Now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return d.Round(100*time.Millisecond).String() + " ago"
	case d < time.Hour:
		return d.Round(time.Second).String() + " ago"
	default:
		return d.Round(time.Minute).String() + " ago"
	}
}

// Table is the data of the task table sub-template.
func (p page) Table(tasks []Task, selectable bool) tableData {
	return tableData{Page: p, Tasks: tasks, Selectable: selectable && !p.ReadOnly}
}

type tableData struct {
	Page       page
	Tasks      []Task
	Selectable bool
}

type pageInfo struct {
	title, nav string
	refresh    int
	content    string
}

var pageInfos = map[string]pageInfo{
	"overview":  {"Overview", "overview", refreshEvery, overviewHTML},
	"tasks":     {"Tasks", "tasks", refreshEvery, tasksHTML},
	"task":      {"Task", "tasks", refreshEvery, taskHTML},
	"stuck":     {"Stuck tasks", "stuck", refreshEvery, stuckHTML},
	"cancelled": {"Cancel", "tasks", 0, cancelledHTML},
	"error":     {"Error", "", 0, errorHTML},
}

var funcs = template.FuncMap{
	"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"pretty": pretty,
	"secs": func(s *float64) string {
		if s == nil {
			return "not known yet"
		}
		return fmt.Sprintf("%.1f s", *s)
	},
	"vars": func(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) },
	"pct": func(p *taskstore.Progress) string {
		if p == nil || p.Total <= 0 {
			return ""
		}
		return fmt.Sprintf("%.0f%%", 100*min(p.Progress/p.Total, 1))
	},
	"clamp": func(p *taskstore.Progress) float64 { return min(p.Progress, p.Total) },
}

// pretty indents a JSON value for reading, with its strings as they are:
// a store may keep "<" as \u003c, and html/template escapes what it shows.
func pretty(raw json.RawMessage) string {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return string(raw)
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if e.Encode(v) != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

var templates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for name, info := range pageInfos {
		t := template.Must(template.New("layout").Funcs(funcs).Parse(layoutHTML))
		template.Must(t.New("tasktable").Parse(taskTableHTML))
		template.Must(t.New("content").Parse(info.content))
		out[name] = t
	}
	return out
}()

// render writes the HTML page name with data. Links are relative to the
// request's path (the handler's own, with its mount point stripped), so
// they work wherever it is mounted.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	info := pageInfos[name]
	base := "./"
	if strings.Count(r.URL.Path, "/") > 1 {
		base = "../"
	}
	p := page{Title: info.title, Nav: info.nav, Base: base, Refresh: info.refresh, ReadOnly: h.opts.ReadOnly,
		Now: time.Now(), Data: data, Script: template.JS(pageScript), Style: template.CSS(pageStyle)}
	var b bytes.Buffer
	if err := templates[name].Execute(&b, p); err != nil {
		// Only a bug in a template gets here: say so, without the page.
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

const layoutHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · mcptasks admin</title>
<style>{{.Style}}</style>
</head>
<body data-refresh="{{.Refresh}}">
<header>
<strong>mcptasks admin</strong>
<nav><a href="{{.Base}}" id="nav-overview"{{if eq .Nav "overview"}} class="here"{{end}}>Overview</a> · <a href="{{.Base}}tasks" id="nav-tasks"{{if eq .Nav "tasks"}} class="here"{{end}}>Tasks</a> · <a href="{{.Base}}stuck" id="nav-stuck"{{if eq .Nav "stuck"}} class="here"{{end}}>Stuck</a></nav>
{{if .Refresh}}<label><input type="checkbox" id="autorefresh" checked> refresh every {{.Refresh}} s</label>{{end}}
{{if .ReadOnly}}<span class="ro">read-only</span>{{end}}
<span class="note">{{when .Now}}</span>
</header>
<main>
{{template "content" .}}
</main>
<script>{{.Script}}</script>
</body>
</html>
`

const taskTableHTML = `{{$p := .Page}}{{if .Tasks}}<table class="tasks">
<thead><tr>{{if .Selectable}}<th><input type="checkbox" id="selectall" title="select all"></th>{{end}}<th>task</th><th>status</th><th>tool</th><th>owner</th><th>created</th><th>updated</th><th>runner (attempt)</th><th>progress</th><th>message</th></tr></thead>
<tbody>
{{range .Tasks}}<tr class="task" data-task="{{.TaskID}}">
{{if $.Selectable}}<td>{{if or (eq .Status "working") (eq .Status "input_required")}}<input type="checkbox" name="ref" value="{{.Ref}}">{{end}}</td>{{end}}
<td class="mono"><a href="{{$p.Base}}tasks/{{.Ref}}">{{.TaskID}}</a></td>
<td><span class="status {{.Status}}">{{.Status}}</span></td>
<td class="tool">{{.Tool}}</td>
<td class="owner mono">{{.Owner}}</td>
<td title="{{when .CreatedAt}}">{{$p.Ago .CreatedAt}}</td>
<td title="{{when .LastUpdatedAt}}">{{$p.Ago .LastUpdatedAt}}</td>
<td class="mono">{{.Runner}}{{if .Attempt}} ({{.Attempt}}){{end}}</td>
<td>{{with .Progress}}{{if gt .Total 0.0}}<progress value="{{clamp .}}" max="{{.Total}}">{{pct .}}</progress> {{pct .}}{{else}}{{.Progress}}{{end}}{{end}}</td>
<td class="msg">{{.StatusMessage}}</td>
</tr>
{{end}}</tbody>
</table>
{{else}}<p class="note">No tasks.</p>
{{end}}`

const overviewHTML = `{{$p := .}}{{with .Data}}
<h1>Overview</h1>
<h2>Tasks by status</h2>
{{if .Counts}}<table id="counts"><tr>{{range $p.Statuses}}<th><a href="{{$p.Base}}tasks?status={{.}}">{{.}}</a></th>{{end}}</tr>
<tr>{{range $p.Statuses}}<td class="num" data-status="{{.}}">{{index $.Data.Counts .}}</td>{{end}}</tr></table>
{{else}}<p class="bad">Counts not available: {{.CountsError}}</p>{{end}}
<p>Change feed on this replica: <strong id="feed">{{.Feed}}</strong>{{if eq .Feed "none"}} (the backend has none: replicas poll){{end}}</p>
<h2>Replicas</h2>
{{if .ReplicasError}}<p class="bad">Replicas not available: {{.ReplicasError}}</p>{{end}}
{{if .Replicas}}<table id="replicas">
<thead><tr><th>runner</th><th>heartbeat age</th><th>beat</th><th>running tasks</th></tr></thead>
<tbody>
{{range .Replicas}}<tr class="replica{{if .Stopped}} bad{{end}}" data-runner="{{.Runner}}">
<td class="mono"><a href="{{$p.Base}}tasks?runner={{.Runner}}">{{.Runner}}</a>{{if .This}} <strong>(this replica)</strong>{{end}}{{if .Released}} (handed over at shutdown){{end}}</td>
<td>{{secs .HeartbeatAge}}{{if .Stopped}} <strong>stopped</strong>{{end}}</td>
<td class="num">{{.Beat}}</td>
<td>{{if .RunningError}}<span class="bad">{{.RunningError}}</span>{{else}}{{len .Running}}{{if .RunningMore}}+{{end}}
{{range .Running}}<br><a class="mono" href="{{$p.Base}}tasks/{{.Ref}}">{{.TaskID}}</a> {{.Tool}}{{end}}{{end}}</td>
</tr>
{{end}}</tbody></table>
{{else}}<p class="note">No replica is registered.</p>{{end}}
{{end}}`

const tasksHTML = `{{$p := .}}{{with .Data}}
<h1>Tasks</h1>
<form class="filter" method="get" action="{{$p.Base}}tasks">
<label>status <select name="status"><option value="">any</option>{{range $p.Statuses}}<option{{if eq (print .) $.Data.Filter.Status}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>tool <input name="tool" value="{{.Filter.Tool}}" maxlength="1024"></label>
<label>owner <input name="owner" value="{{.Filter.Owner}}" maxlength="512"></label>
<label>runner <input name="runner" value="{{.Filter.Runner}}" maxlength="128"></label>
<label>older than <input name="older" value="{{.Filter.Older}}" placeholder="e.g. 10m" size="6"></label>
<label>newer than <input name="newer" value="{{.Filter.Newer}}" placeholder="e.g. 1h" size="6"></label>
<label>per page <input name="limit" value="{{.Filter.Limit}}" size="4"></label>
<button type="submit" id="apply">Filter</button> <a href="{{$p.Base}}tasks">clear</a>
</form>
{{if .Tasks}}{{if not .ReadOnly}}<form method="post" action="{{$p.Base}}cancel">{{end}}
{{template "tasktable" ($p.Table .Tasks true)}}
{{if not .ReadOnly}}<button type="submit" id="cancel-selected">Cancel selected tasks</button></form>{{end}}
{{else}}<p class="note">No tasks on this page.</p>{{end}}
<p>{{if .NextURL}}<a href="{{.NextURL}}" id="next">next page</a> (oldest first){{else}}<span class="note">last page</span>{{end}}</p>
{{end}}`

const taskHTML = `{{$p := .}}{{with .Data}}
<h1>Task <span class="mono">{{.TaskID}}</span></h1>
<table id="task">
<tr><th>status</th><td><span class="status {{.Status}}" id="status">{{.Status}}</span></td></tr>
<tr><th>message</th><td class="msg" id="message">{{.StatusMessage}}</td></tr>
<tr><th>tool</th><td>{{.Tool}}</td></tr>
<tr><th>owner</th><td class="mono" id="owner">{{.Owner}}</td></tr>
<tr><th>created</th><td>{{when .CreatedAt}} ({{$p.Ago .CreatedAt}})</td></tr>
<tr><th>last updated</th><td>{{when .LastUpdatedAt}} ({{$p.Ago .LastUpdatedAt}})</td></tr>
{{with .ExpiresAt}}<tr><th>expires</th><td>{{when .}}</td></tr>{{end}}
<tr><th>lease</th><td class="mono">{{if .Runner}}{{.Runner}}, attempt {{.Attempt}}{{else}}none{{end}}</td></tr>
{{with .Progress}}<tr><th>progress</th><td id="progress">{{if gt .Total 0.0}}<progress value="{{clamp .}}" max="{{.Total}}">{{pct .}}</progress> {{pct .}} ({{.Progress}} of {{.Total}}){{else}}{{.Progress}}{{end}} {{.Message}}</td></tr>{{end}}
{{with .RequestMethod}}<tr><th>request</th><td class="mono">{{.}}</td></tr>{{end}}
</table>
{{if and (not .ReadOnly) (or (eq .Status "working") (eq .Status "input_required"))}}<form method="post" action="{{$p.Base}}cancel"><input type="hidden" name="ref" value="{{.Ref}}"><button type="submit" id="cancel">Cancel this task</button></form>{{end}}
{{if .Redacted}}<p class="note">Variables, result, error data and input are hidden (redacted).</p>{{end}}
{{if .InputKeys}}<h2>Pending input</h2><p>Keys: {{range $i, $k := .InputKeys}}{{if $i}}, {{end}}<span class="mono">{{$k}}</span>{{end}}</p>{{with .InputRequests}}<pre id="input-requests">{{pretty .}}</pre>{{end}}{{end}}
{{with .InputResponses}}<h2>Answers not yet taken</h2><pre>{{pretty .}}</pre>{{end}}
{{if .Variables}}<h2>Variables</h2><table id="variables">{{range $k := vars .Variables}}<tr><th class="mono">{{$k}}</th><td><pre>{{pretty (index $.Data.Variables $k)}}</pre></td></tr>{{end}}</table>{{end}}
{{with .Result}}<h2>Result</h2><pre id="result">{{pretty .}}</pre>{{end}}
{{with .Error}}<h2>Error</h2><p id="error">{{.Code}}: {{.Message}}</p>{{with .Data}}<pre>{{pretty .}}</pre>{{end}}{{end}}
{{end}}`

const stuckHTML = `{{$p := .}}{{with .Data}}
<h1>Stuck tasks</h1>
<h2>Working for longer than {{.StuckAfter}} s</h2>
<div id="stuck-working">{{template "tasktable" ($p.Table .Working false)}}</div>
<h2>Waiting for input, unchanged for longer than {{.StuckAfter}} s</h2>
<div id="stuck-input">{{template "tasktable" ($p.Table .InputWaiting false)}}</div>
<h2>Held by replicas whose heartbeat stopped</h2>
<div id="stuck-orphaned">{{template "tasktable" ($p.Table .Orphaned false)}}</div>
{{if .More}}<p class="note">Some lists stop at a page: see <a href="{{$p.Base}}tasks">Tasks</a> for the rest.</p>{{end}}
{{end}}`

const cancelledHTML = `{{$p := .}}{{with .Data}}
<h1>Cancel</h1>
<table id="results"><thead><tr><th>task</th><th>status</th><th>outcome</th></tr></thead><tbody>
{{range .Results}}<tr class="result"><td class="mono">{{if .Ref}}<a href="{{$p.Base}}tasks/{{.Ref}}">{{.TaskID}}</a>{{end}}</td><td>{{.Status}}</td><td>{{if .Error}}<span class="bad">{{.Error}}</span>{{else}}cancelled{{end}}</td></tr>
{{end}}</tbody></table>
<p><a href="{{$p.Base}}tasks">back to the tasks</a></p>
{{end}}`

const errorHTML = `{{with .Data}}<h1>Error {{.Status}}</h1><p class="bad" id="error">{{.Message}}</p>{{end}}`
