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
)

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
	redisDelete = redisLuaScript("delete.lua", false)
	redisList   = redisLuaScript("list.lua", true)
	redisSweep  = redisLuaScript("sweep.lua", true)

	redisScripts = []*redis.Script{redisCreate, redisUpdate, redisDelete, redisList, redisSweep}
)
