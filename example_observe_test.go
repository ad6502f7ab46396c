package relock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/relock-go/relock"
)

func ExampleSlogObserver() {
	rdb, stop := exampleRedis()
	defer stop()

	// Debug shows every event; at Info only not obtained, failed refreshes
	// and losses remain. The time, the durations and the error's text
	// (which says how long the holder has left) are dropped here so that
	// the output is stable.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "wait", "held", "err":
				return slog.Attr{}
			}
			return a
		},
	}))
	locker, err := relock.New(rdb.Conn(), relock.WithObserver(relock.SlogObserver(logger)))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx := context.Background()

	lock, err := locker.Obtain(ctx, "report:42", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	_, _ = locker.TryObtain(ctx, "report:42", 30*time.Second) // taken
	_ = lock.Release(ctx)
	// Output:
	// level=DEBUG msg="relock: obtained" key=report:42 tries=1
	// level=INFO msg="relock: not_obtained" key=report:42 tries=1
	// level=DEBUG msg="relock: released" key=report:42
}

func ExampleObserverFunc() {
	rdb, stop := exampleRedis()
	defer stop()

	// An observer is called synchronously: keep it quick, and never call
	// back into the lock from it.
	alert := relock.ObserverFunc(func(e relock.Event) {
		switch e.Kind {
		case relock.EventObtained:
			fmt.Printf("obtained %s in %d try, handed over: %v\n", e.Key, e.Tries, e.HandedOver)
		case relock.EventLost:
			fmt.Printf("lost %s: taken or gone: %v\n", e.Key, errors.Is(e.Err, relock.ErrNotHeld))
		}
	})
	locker, err := relock.New(rdb.Conn(), relock.WithObserver(alert))
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	ctx := context.Background()

	lock, err := locker.Obtain(ctx, "job:7", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	rdb.Del("job:7") // someone deletes the key behind the lock
	if err := lock.Refresh(ctx, 30*time.Second); errors.Is(err, relock.ErrNotHeld) {
		fmt.Println("refresh:", lock.Err() != nil)
	}
	// Output:
	// obtained job:7 in 1 try, handed over: false
	// lost job:7: taken or gone: true
	// refresh: true
}
