//go:build redis

package mcptasks

import (
	"embed"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The scripts live in redis_lua/, each file saying its KEYS, ARGV and
// replies.
//
//go:embed redis_lua/*.lua
var redisLua embed.FS

// redisLuaConstants are the Go constants the scripts name: each name is
// replaced by its value once, when the script is loaded at init.
var redisLuaConstants = strings.NewReplacer(
	"PRUNE_BATCH", strconv.Itoa(redisPruneBatch),
	"STATUS_COUNT_PRUNE", strconv.Itoa(redisStatusCountPrune),
	"STATUS_CODES", redisLuaStatusCodes(),
)

// redisLuaStatusCodes is the Lua table of every status code, "" (none)
// first, as status_count.lua returns its counts.
func redisLuaStatusCodes() string {
	var sb strings.Builder
	sb.WriteString("{")
	for i, c := range redisStatusCodeList {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("'" + c + "'")
	}
	sb.WriteString("}")
	return sb.String()
}

// redisLuaScript is the script in file, its constants put in, after the
// prelude's helpers when it uses them.
func redisLuaScript(file string, prelude bool) *redis.Script {
	src := redisLuaFile(file)
	if prelude {
		src = redisLuaFile("prelude.lua") + src
	}
	return redis.NewScript(redisLuaConstants.Replace(src))
}

func redisLuaFile(name string) string {
	b, err := redisLua.ReadFile("redis_lua/" + name)
	if err != nil {
		panic("mcptasks: " + err.Error()) // embedded: cannot happen
	}
	return string(b)
}

var (
	redisCreate = redisLuaScript("create.lua", true)
	redisUpdate = redisLuaScript("update.lua", false)
	redisDelete = redisLuaScript("delete.lua", true)
	redisList   = redisLuaScript("list.lua", true)
	redisSweep  = redisLuaScript("sweep.lua", true)

	// The status index's own (see redisBackend).
	redisStatusDrop  = redisLuaScript("status_drop.lua", true)
	redisStatusPage  = redisLuaScript("status_page.lua", true)
	redisStatusCount = redisLuaScript("status_count.lua", true)
	redisStatusPrune = redisLuaScript("status_prune.lua", true)

	redisScripts = []*redis.Script{redisCreate, redisUpdate, redisDelete, redisList, redisSweep,
		redisStatusDrop, redisStatusPage, redisStatusCount, redisStatusPrune}
)
