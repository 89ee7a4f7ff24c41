package deploy

import (
	"errors"
	"strings"
	"testing"
)

// TestScaler drives the scaling state machine through readings: below
// min it adds, above max it removes, a queue scales up only after UpAfter
// readings in a row and only when every replica job serves, idleness
// scales down after DownAfter readings, and each change starts the counts
// again.
func TestScaler(t *testing.T) {
	type step struct {
		o    observation
		want int
	}
	ob := func(jobs, serving, waiting, busy int) observation {
		return observation{jobs: jobs, serving: serving, waiting: waiting, busy: busy, min: 1, max: 3}
	}
	steps := []step{
		{observation{jobs: 0, min: 2, max: 3}, 2}, // below min: fill at once
		{observation{jobs: 5, min: 1, max: 3}, -2},
		{ob(1, 1, 9, 10), 0}, // a queue of 9 > 4 per replica: 1st reading
		{ob(1, 1, 9, 10), 0}, // 2nd
		{ob(1, 1, 3, 4), 0},  // not short: the count starts again
		{ob(1, 1, 9, 10), 0},
		{ob(1, 1, 9, 10), 0},
		{ob(1, 1, 9, 10), 1},    // 3rd in a row: up
		{ob(2, 1, 20, 21), 0},   // the new replica starts: no more
		{ob(2, 1, 20, 21), 0},   //
		{ob(2, 1, 20, 21), 0},   // short 3 times, but one job is not serving
		{ob(2, 2, 20, 22), 1},   // serving now: up (the count kept going)
		{ob(3, 3, 40, 43), 0},   // at max: never more
		{ob(3, 3, 40, 43), 0},   //
		{ob(3, 3, 40, 43), 0},   //
		{ob(3, 3, 0, 0), 0},     // idle 1
		{ob(3, 3, 0, 0), 0},     // idle 2
		{ob(3, 3, 0, 1), 0},     // busy: the idle count starts again
		{ob(3, 3, 0, 0), 0},     // 1
		{ob(3, 3, 0, 0), 0},     // 2
		{ob(3, 3, 0, 0), -1},    // 3: down
		{ob(2, 2, 0, 0), 0},     // counts again from 0
		{ob(2, 2, 0, 0), 0},     //
		{ob(2, 2, 0, 0), -1},    //
		{ob(1, 1, 0, 0), 0},     // at min: never fewer
		{ob(1, 1, 0, 0), 0},     //
		{ob(1, 1, 0, 0), 0},     //
		{ob(1, 1, 0, 0), 0},     //
		{ob(1, 0, 100, 100), 0}, // nothing serving: no reading of the queue
		{ob(2, 0, 0, 0), 0},     // nothing reported: not idle either
		{ob(2, 0, 0, 0), 0},     //
		{ob(2, 0, 0, 0), 0},     //
		{ob(2, 0, 0, 0), 0},     //
		{ob(2, 1, 0, 0), 0},     // one serving, idle: 1
		{ob(2, 1, 0, 0), 0},     // 2
		{ob(2, 1, 0, 0), -1},    // 3: down (the one not serving goes first)
	}
	s := scaler{upQueue: 4, upAfter: 3, downAfter: 3}
	for i, st := range steps {
		if got := s.decide(st.o); got != st.want {
			t.Fatalf("reading %d %+v: %d, want %d", i, st.o, got, st.want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Name: "tiny", Model: "/m", MinReplicas: 1, MaxReplicas: 2}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Name: "Tiny", Model: "/m", MinReplicas: 1, MaxReplicas: 1}, "--deployment"},
		{Spec{Name: "t", MinReplicas: 1, MaxReplicas: 1}, "--model"},
		{Spec{Name: "t", Model: "/m", MinReplicas: 0, MaxReplicas: 1}, "--min-replicas"},
		{Spec{Name: "t", Model: "/m", MinReplicas: 3, MaxReplicas: 2}, "--max-replicas, 2"},
	} {
		err := c.s.Validate()
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want one naming %q", c.s, err, c.want)
		}
	}
}

func TestVisibleDevices(t *testing.T) {
	for _, c := range []struct {
		idx    []int
		parent string
		want   string
	}{
		{[]int{0}, "", "0"},
		{[]int{1, 2}, "", "1,2"},
		{[]int{1}, "4,5", "5"},
		{[]int{0, 1}, " 6, 7 ", "6,7"},
		{[]int{2}, "4,5", "2"}, // past the parent's list: the index itself
	} {
		if got := visibleDevices(c.idx, c.parent); got != c.want {
			t.Errorf("visibleDevices(%v, %q) = %q, want %q", c.idx, c.parent, got, c.want)
		}
	}
}
