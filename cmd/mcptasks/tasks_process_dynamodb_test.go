//go:build dynamodb

package main

import "testing"

// DynamoDB has no change feed: the replica sees a cancel when it polls.
func TestOperatorCLIDynamoDB(t *testing.T) {
	testOperatorCLI(t, "dynamodb", dynamoStoreURL(t))
}
