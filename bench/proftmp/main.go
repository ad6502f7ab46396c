package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
)

func main() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 32})
	c, _ := relock.New(goredis.New(rdb))
	ctx := context.Background()
	script := redis.NewScript(`if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end`)
	src, _ := os.ReadFile("../internal/scripts/release.lua")
	rel := redis.NewScript(string(src))
	run := func(name string, f func(k string)) {
		var n atomic.Int64
		var wg sync.WaitGroup
		end := time.Now().Add(4 * time.Second)
		for i := range 16 {
			wg.Go(func() {
				k := fmt.Sprintf("prof:%d", i)
				for time.Now().Before(end) {
					f(k)
					n.Add(1)
				}
			})
		}
		wg.Wait()
		fmt.Println(name, n.Load()/4)
	}
	if os.Getenv("PROF") != "" {
		f, _ := os.Create(os.Getenv("PROF"))
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for range 2 {
		if os.Getenv("ONLY") != "raw" {
			run("relock", func(k string) {
				l, err := c.TryObtain(ctx, k, 10*time.Second)
				if err != nil {
					panic(err)
				}
				if err := l.Release(ctx); err != nil {
					panic(err)
				}
			})
		}
		if os.Getenv("ONLY") == "" {
			run("raw-relockscript", func(k string) {
				tok := fmt.Sprint(time.Now().UnixNano())
				ok, err := rdb.SetNX(ctx, k, tok, 10*time.Second).Result()
				if err != nil || !ok {
					panic(err)
				}
				b := "{" + k + "}"
				if err := rel.Run(ctx, rdb, []string{k, b + ":q", b + ":fence"}, tok, b+":w:", b+":ch", "").Err(); err != nil {
					panic(err)
				}
			})
		}
		if os.Getenv("ONLY") != "relock" {
			run("raw", func(k string) {
				tok := fmt.Sprint(time.Now().UnixNano())
				ok, err := rdb.SetNX(ctx, k, tok, 10*time.Second).Result()
				if err != nil || !ok {
					panic(err)
				}
				if err := script.Run(ctx, rdb, []string{k}, tok).Err(); err != nil {
					panic(err)
				}
			})
		}
	}
}
