// WEBHOOK_SECRET=whsec_… go run . headers.json < body.json
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	body, err := io.ReadAll(os.Stdin) // the raw bytes as received: verify them before parsing
	if err != nil {
		log.Fatal(err)
	}
	headers := http.Header{} // in an http.Handler: r.Header
	var fields map[string]string
	raw, err := os.ReadFile(os.Args[1])
	if err == nil {
		err = json.Unmarshal(raw, &fields)
	}
	if err != nil {
		log.Fatal(err)
	}
	for name, value := range fields {
		headers.Set(name, value)
	}

	wh, err := standardwebhooks.NewWebhook(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	if err := wh.Verify(body, headers); err != nil {
		log.Fatalf("rejected: %v", err)
	}
	var alert any
	if err := json.Unmarshal(body, &alert); err != nil {
		log.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(alert, "", "  ")
	fmt.Println(string(pretty))
}
