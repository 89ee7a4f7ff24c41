package dist

import (
	"fmt"
)

// BlockID names output partition part of one attempt of a task, e.g. "j-1/s2/t7/a1/p3".
func BlockID(job string, stage, task, attempt, part int) string {
	return fmt.Sprintf("%s/s%d/t%d/a%d/p%d", job, stage, task, attempt, part)
}

// SampleID names the sample block of one attempt of a task, e.g. "j-1/s2/t7/a1/sample".
func SampleID(job string, stage, task, attempt int) string {
	return fmt.Sprintf("%s/s%d/t%d/a%d/sample", job, stage, task, attempt)
}
