// Command loadgen is the benches' gRPC load generator: it sends pre-encoded unary requests over one
// HTTP/2 connection and prints every call's timings as JSON.
//
// The Node benches measure through it where the client's own pauses would otherwise show up in the
// service's latency: on a 2-core machine, a Node client's young-generation collections (10-30 ms)
// delay the answers it reads. Go's collector does not stop the program for that long.
//
// Input (stdin, JSON): the target address, the method's path, the request messages (base64 of their
// protobuf bytes) and the measured windows (warmupMs, then durationMs), then either
//   - an open loop: ratePerSecond and maxInFlight. Call i is due at start + i/rate; a due call
//     beyond the in-flight bound is not made and counts as dropped. Latency is taken from the due
//     time, so a client that falls behind cannot hide the wait (no coordinated omission). Calls due
//     in the measured window count;
//   - or a closed loop: concurrency workers, each sending its next call when the last answered.
//     Calls that end in the measured window count.
//
// Each call picks a request at random, or with sequential, takes the next one, each at most once
// (for commands that must not repeat).
//
// Output (stdout, JSON): for the counted calls, the latency from the due time, from the send time
// and the send delay of each successful call (milliseconds; in a closed loop a call is due when
// sent), the error count with up to five messages, the dropped count, a tally of one top-level
// varint field of the answers (e.g. GetContextResponse.source) when asked for.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

type input struct {
	Target        string   `json:"target"`
	Method        string   `json:"method"`
	Requests      []string `json:"requests"`
	RatePerSecond float64  `json:"ratePerSecond"`
	WarmupMs      float64  `json:"warmupMs"`
	DurationMs    float64  `json:"durationMs"`
	MaxInFlight   int      `json:"maxInFlight"`
	// TallyField, when above 0: count the responses by the value of this top-level varint field.
	TallyField int `json:"tallyField"`
	// Concurrency, when above 0, makes a closed loop instead: that many workers, each sending its
	// next call when the last one answered, for warmupMs then durationMs (ratePerSecond unused).
	Concurrency int `json:"concurrency"`
	// Sequential sends the requests in order, each at most once, instead of picking at random:
	// for commands that must not repeat. Running out fails the run.
	Sequential bool `json:"sequential"`
	// Authorization, when set, is sent as the authorization header of every call (a bearer token:
	// the services run with authentication on, as deployed).
	Authorization string `json:"authorization"`
}

// callCtx carries the calls' metadata (the authorization header), made once for every call.
var callCtx = context.Background()

type output struct {
	Scheduled    int            `json:"scheduled"`
	Dropped      int            `json:"dropped"`
	Errors       int            `json:"errors"`
	ErrorSamples []string       `json:"errorSamples"`
	FromDueMs    []float64      `json:"fromDueMs"`
	FromSendMs   []float64      `json:"fromSendMs"`
	SendDelayMs  []float64      `json:"sendDelayMs"`
	Tally        map[string]int `json:"tally"`
}

// rawCodec passes message bytes through: requests are encoded by the caller, answers are kept as
// bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		return fmt.Errorf("reading the input: %w", err)
	}
	if (in.RatePerSecond <= 0 && in.Concurrency <= 0) || in.DurationMs <= 0 || len(in.Requests) == 0 {
		return fmt.Errorf("ratePerSecond (or concurrency), durationMs and requests are required")
	}
	if in.MaxInFlight <= 0 {
		in.MaxInFlight = 10_000
	}
	requests := make([][]byte, len(in.Requests))
	for i, r := range in.Requests {
		b, err := base64.StdEncoding.DecodeString(r)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		requests[i] = b
	}
	if in.Authorization != "" {
		callCtx = metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", in.Authorization))
	}
	conn, err := grpc.NewClient(in.Target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer conn.Close()
	// Connect before the clock starts, so the first calls do not pay the handshake. In sequential
	// mode this uses up the first request.
	var warm []byte
	if err := conn.Invoke(callCtx, in.Method, &requests[0], &warm); err != nil {
		return fmt.Errorf("first call: %w", err)
	}
	if in.Sequential {
		requests = requests[1:]
	}

	out := output{Tally: map[string]int{}, ErrorSamples: []string{}}
	if in.Concurrency > 0 {
		closedLoop(conn, &in, requests, &out)
	} else {
		openLoop(conn, &in, requests, &out)
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// record adds one finished call of the measured window to out (under its lock).
func (out *output) record(in *input, due, sent, end time.Time, answer []byte, err error) {
	out.Scheduled++
	if err != nil {
		out.Errors++
		if len(out.ErrorSamples) < 5 {
			out.ErrorSamples = append(out.ErrorSamples, err.Error())
		}
		return
	}
	out.FromDueMs = append(out.FromDueMs, ms(end.Sub(due)))
	out.FromSendMs = append(out.FromSendMs, ms(end.Sub(sent)))
	out.SendDelayMs = append(out.SendDelayMs, ms(sent.Sub(due)))
	if in.TallyField > 0 {
		out.Tally[fmt.Sprint(varintField(answer, protowire.Number(in.TallyField)))]++
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// picker hands out requests: at random, or in order and each once (ok is false when none is left).
type picker struct {
	requests   [][]byte
	sequential bool
	next       atomic.Int64
}

func (p *picker) pick() (request []byte, ok bool) {
	if !p.sequential {
		return p.requests[rand.IntN(len(p.requests))], true
	}
	i := p.next.Add(1) - 1
	if i >= int64(len(p.requests)) {
		return nil, false
	}
	return p.requests[i], true
}

var errOutOfRequests = fmt.Errorf("ran out of requests (sequential mode sends each once)")

// closedLoop runs in.Concurrency workers, each with one call in flight, and records the calls that
// end within the measured window (their latency from the send: due and sent are the same).
func closedLoop(conn *grpc.ClientConn, in *input, requests [][]byte, out *output) {
	p := &picker{requests: requests, sequential: in.Sequential}
	begin := time.Now()
	measureFrom := begin.Add(time.Duration(in.WarmupMs * float64(time.Millisecond)))
	measureTo := measureFrom.Add(time.Duration(in.DurationMs * float64(time.Millisecond)))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range in.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(measureTo) {
				request, ok := p.pick()
				if !ok {
					mu.Lock()
					out.record(in, time.Now(), time.Now(), time.Now(), nil, errOutOfRequests)
					mu.Unlock()
					return
				}
				sent := time.Now()
				var answer []byte
				err := conn.Invoke(callCtx, in.Method, &request, &answer)
				end := time.Now()
				if end.Before(measureFrom) || end.After(measureTo) {
					continue
				}
				mu.Lock()
				out.record(in, sent, sent, end, answer, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// openLoop sends a call every 1/in.RatePerSecond whether or not earlier ones answered (see the
// package comment) and records the calls due in the measured window.
func openLoop(conn *grpc.ClientConn, in *input, requests [][]byte, out *output) {
	p := &picker{requests: requests, sequential: in.Sequential}
	var mu sync.Mutex
	var wg sync.WaitGroup
	inFlight := make(chan struct{}, in.MaxInFlight)
	interval := time.Duration(float64(time.Second) / in.RatePerSecond)
	begin := time.Now()
	measureFrom := begin.Add(time.Duration(in.WarmupMs * float64(time.Millisecond)))
	measureTo := measureFrom.Add(time.Duration(in.DurationMs * float64(time.Millisecond)))
	// The schedule runs on a thread of its own that sleeps with nanosleep: Go's timers wake through
	// epoll, whose timeout has millisecond granularity, so time.Sleep would send calls up to 1 ms
	// late at this rate.
	runtime.LockOSThread()
	for i := 0; ; i++ {
		due := begin.Add(time.Duration(i) * interval)
		if !due.Before(measureTo) {
			break
		}
		sleepUntil(due)
		measured := !due.Before(measureFrom)
		select {
		case inFlight <- struct{}{}:
		default:
			if measured {
				mu.Lock()
				out.Scheduled++
				out.Dropped++
				mu.Unlock()
			}
			continue
		}
		request, ok := p.pick()
		if !ok {
			<-inFlight
			mu.Lock()
			if measured {
				out.record(in, due, due, due, nil, errOutOfRequests)
			}
			mu.Unlock()
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inFlight }()
			sent := time.Now()
			var answer []byte
			err := conn.Invoke(callCtx, in.Method, &request, &answer)
			end := time.Now()
			if !measured {
				return
			}
			mu.Lock()
			out.record(in, due, sent, end, answer, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// sleepUntil blocks the calling thread until t (interrupted sleeps are resumed).
func sleepUntil(t time.Time) {
	for {
		wait := time.Until(t)
		if wait <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(wait.Nanoseconds())
		_ = syscall.Nanosleep(&ts, nil)
	}
}

// varintField is the last value of a top-level varint field of a message, 0 when absent (proto3's
// default), -1 when the bytes do not parse.
func varintField(message []byte, field protowire.Number) int64 {
	var value int64
	for len(message) > 0 {
		num, typ, n := protowire.ConsumeTag(message)
		if n < 0 {
			return -1
		}
		message = message[n:]
		if num == field && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(message)
			if m < 0 {
				return -1
			}
			value = int64(v)
			message = message[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, message)
		if m < 0 {
			return -1
		}
		message = message[m:]
	}
	return value
}
