package goredis_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock"
)

// A MOVED reply to a client that talks to one node of a cluster (a URL
// with one address) says how to reach the others: ?addr= in the URL.
func TestMovedHint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { movedServer(cn) })
		}
	})
	c, err := relock.Open("goredis", "redis://"+ln.Addr().String()+"?protocol=2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.TryObtain(ctx, "k", time.Second)
	if err == nil || !strings.Contains(err.Error(), "MOVED") || !strings.Contains(err.Error(), "?addr=") {
		t.Fatalf("TryObtain on a node that answers MOVED = %v, want the MOVED with a hint to add ?addr=", err)
	}
}

// movedServer answers every command on cn with a MOVED redirection, and
// CLIENT (go-redis's SETINFO) with OK.
func movedServer(cn net.Conn) {
	defer cn.Close()
	r := bufio.NewReader(cn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, "*") {
			continue
		}
		var n int
		for _, ch := range strings.TrimSpace(line[1:]) {
			n = n*10 + int(ch-'0')
		}
		var args []string
		for range n {
			if _, err := r.ReadString('\n'); err != nil { // $len
				return
			}
			arg, err := r.ReadString('\n')
			if err != nil {
				return
			}
			args = append(args, strings.TrimSpace(arg))
		}
		reply := "-MOVED 3999 127.0.0.1:6381\r\n"
		if len(args) > 0 && strings.EqualFold(args[0], "CLIENT") {
			reply = "+OK\r\n"
		}
		if _, err := cn.Write([]byte(reply)); err != nil {
			return
		}
	}
}
