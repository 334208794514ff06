module example.com/moat-guests/vulnerable

go 1.24

require golang.org/x/text v0.3.5
