package train

import (
	"fmt"
	"iter"
	"math/rand/v2"
)

// DefaultShuffleBuffer is how many rows --shuffle mixes at a time.
const DefaultShuffleBuffer = 10000

// stream hands out the data's rows epoch after epoch without holding the
// dataset: each epoch reads it again from the start. With shuffle, rows
// pass through a buffer of ShuffleBuffer rows from which a seeded draw
// picks the next (the local shuffle of tf.data and Ray Data); an epoch no
// larger than the buffer is a uniform permutation. The draw is seeded by
// (seed, epoch), so the position (epoch, index) names the same row on every
// run: resuming replays the epoch's first index rows.
type stream struct {
	rows    func() iter.Seq2[sample, error] // one epoch's rows, file order
	shuffle bool
	seed    uint64
	bufSize int
	// want is the rows of an epoch, from a checkpoint (0: unknown); an epoch
	// of another length is an error.
	want int

	pos   dataPos
	count int // rows of the epoch read from the data so far
	known int // rows per epoch, once an epoch has ended (0 before)
	next  func() (sample, error, bool)
	stop  func()
	buf   []sample
	rng   *rand.Rand
}

func (s *stream) close() {
	if s.stop != nil {
		s.stop()
		s.next, s.stop = nil, nil
	}
}

// start opens epoch s.pos.Epoch and skips its first skip rows.
func (s *stream) start(skip int) error {
	s.close()
	s.next, s.stop = iter.Pull2(s.rows())
	s.buf, s.count = s.buf[:0], 0
	s.rng = rand.New(rand.NewPCG(s.seed, uint64(s.pos.Epoch)))
	s.pos.Index = 0
	for range skip {
		if _, _, err := s.take(); err != nil {
			return err
		}
	}
	return nil
}

// pull reads one row from the data; ok is false at the epoch's end.
func (s *stream) pull() (sample, bool, error) {
	r, err, ok := s.next()
	if !ok {
		if s.count == 0 {
			return sample{}, false, fmt.Errorf("train: the dataset has no rows: %w", ErrData)
		}
		if s.want > 0 && s.count != s.want {
			return sample{}, false, fmt.Errorf("train: the checkpoint was trained on %d rows, --data has %d: %w", s.want, s.count, ErrCheckpoint)
		}
		s.known = s.count
		return sample{}, false, nil
	}
	if err != nil {
		return sample{}, false, err
	}
	s.count++
	return r, true, nil
}

// take returns the epoch's next row; ok is false at its end.
func (s *stream) take() (sample, bool, error) {
	if !s.shuffle {
		r, ok, err := s.pull()
		if err != nil || !ok {
			return sample{}, false, err
		}
		s.pos.Index++
		return r, true, nil
	}
	for len(s.buf) < s.bufSize {
		r, ok, err := s.pull()
		if err != nil {
			return sample{}, false, err
		}
		if !ok {
			break
		}
		s.buf = append(s.buf, r)
	}
	if len(s.buf) == 0 {
		return sample{}, false, nil
	}
	j := s.rng.IntN(len(s.buf))
	r := s.buf[j]
	last := len(s.buf) - 1
	s.buf[j] = s.buf[last]
	s.buf = s.buf[:last]
	s.pos.Index++
	return r, true, nil
}

// row returns the next row, starting the next epoch when one ends.
func (s *stream) row() (sample, error) {
	if s.next == nil {
		if err := s.start(s.pos.Index); err != nil {
			return sample{}, err
		}
	}
	r, ok, err := s.take()
	if err != nil || ok {
		return r, err
	}
	s.pos.Epoch++
	if err := s.start(0); err != nil {
		return sample{}, err
	}
	r, _, err = s.take()
	return r, err
}
