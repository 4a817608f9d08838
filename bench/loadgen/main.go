// Command loadgen is the bench's open-loop gRPC load generator: it sends pre-encoded unary requests
// on a fixed schedule over one HTTP/2 connection and prints every call's timings as JSON.
//
// The Node benches measure through it where the client's own pauses would otherwise show up in the
// service's latency: on a 2-core machine, a Node client's young-generation collections (10-30 ms)
// delay the answers it reads. Go's collector does not stop the program for that long, and the
// client's CPU per call is a fraction of a Node client's, leaving the cores to the service.
//
// Input (stdin, JSON): the target address, the method's path, the request messages (base64 of their
// protobuf bytes; each call picks one at random), the rate, the warm-up and measured windows, and
// the calls allowed in flight. Call i is due at start + i/rate; a due call beyond the in-flight
// bound is not made and counts as dropped. Latency is taken from the due time, so a client that
// falls behind cannot hide the wait (no coordinated omission).
//
// Output (stdout, JSON): for the calls due in the measured window, the latency from the due time,
// from the send time and the send delay of each successful call (milliseconds), the error count
// with up to five messages, the dropped count, and a tally of one top-level varint field of the
// responses (e.g. GetContextResponse.source) when asked for.
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
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
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
}

type output struct {
	Scheduled    int            `json:"scheduled"`
	Dropped      int            `json:"dropped"`
	Errors       int            `json:"errors"`
	ErrorSamples []string       `json:"errorSamples"`
	FromDueMs    []float64      `json:"fromDueMs"`
	FromSendMs   []float64      `json:"fromSendMs"`
	SendDelayMs  []float64      `json:"sendDelayMs"`
	Tally        map[string]int `json:"tally"`
	// CPUSeconds is the CPU this process used (user and system), connection set-up included.
	CPUSeconds float64 `json:"cpuSeconds"`
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
	if in.RatePerSecond <= 0 || in.DurationMs <= 0 || len(in.Requests) == 0 {
		return fmt.Errorf("ratePerSecond, durationMs and requests are required")
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
	conn, err := grpc.NewClient(in.Target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer conn.Close()
	// Connect before the clock starts, so the first calls do not pay the handshake.
	var warm []byte
	if err := conn.Invoke(context.Background(), in.Method, &requests[0], &warm); err != nil {
		return fmt.Errorf("first call: %w", err)
	}

	out := output{Tally: map[string]int{}, ErrorSamples: []string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	inFlight := make(chan struct{}, in.MaxInFlight)
	interval := time.Duration(float64(time.Second) / in.RatePerSecond)
	begin := time.Now()
	measureFrom := begin.Add(time.Duration(in.WarmupMs * float64(time.Millisecond)))
	measureTo := measureFrom.Add(time.Duration(in.DurationMs * float64(time.Millisecond)))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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
		request := requests[rand.IntN(len(requests))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inFlight }()
			sent := time.Now()
			var answer []byte
			err := conn.Invoke(context.Background(), in.Method, &request, &answer)
			end := time.Now()
			if !measured {
				return
			}
			mu.Lock()
			defer mu.Unlock()
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
		}()
	}
	wg.Wait()
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err == nil {
		out.CPUSeconds = time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
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
