// Package restartport picks a loopback port for a server a test kills and
// starts again on the same port.
package restartport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// Pick returns a free loopback port below the kernel's ephemeral range: a
// port in that range can be taken meanwhile as the local end of an
// outgoing connection (the store's clients, retrying), and the restart
// then fails with "address already in use".
func Pick(t testing.TB) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	for range 100 {
		p := 10000 + rand.IntN(max(low-10000, 1))
		if low <= 11000 {
			p = 50000 + rand.IntN(10000)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}
