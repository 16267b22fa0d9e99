package dicom

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxJSONItems bounds the elements read from DICOM JSON.
const maxJSONItems = 1 << 24

// ParseJSON parses DICOM JSON (PS3.18 F.2), an array of datasets such as
// a DICOMweb metadata response, into Datasets. Bulk data given by URI is
// not fetched: its element has BulkURI set and no value.
func ParseJSON(data []byte) ([]*Dataset, error) {
	var arr []map[string]json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil {
		return nil, fmt.Errorf("invalid DICOM JSON: %w", err)
	}
	budget := maxJSONItems
	out := make([]*Dataset, 0, len(arr))
	for _, obj := range arr {
		ds, err := jsonDataset(obj, 0, &budget)
		if err != nil {
			return nil, err
		}
		out = append(out, ds)
	}
	return out, nil
}

type jsonElement struct {
	VR           string            `json:"vr"`
	Value        []json.RawMessage `json:"Value"`
	InlineBinary string            `json:"InlineBinary"`
	BulkDataURI  string            `json:"BulkDataURI"`
}

func jsonDataset(obj map[string]json.RawMessage, depth int, budget *int) (*Dataset, error) {
	if depth > maxDepth {
		return nil, errors.New("DICOM JSON nested too deeply")
	}
	ds := &Dataset{}
	for key, raw := range obj {
		*budget--
		if *budget < 0 {
			return nil, errors.New("DICOM JSON too large")
		}
		tv, err := strconv.ParseUint(key, 16, 32)
		if err != nil || len(key) != 8 {
			return nil, fmt.Errorf("bad DICOM JSON tag %q", key)
		}
		var je jsonElement
		if err := json.Unmarshal(raw, &je); err != nil {
			return nil, fmt.Errorf("DICOM JSON element %s: %w", key, err)
		}
		e := &Element{Tag: Tag(tv), VR: je.VR}
		switch {
		case je.VR == "SQ":
			for _, it := range je.Value {
				var o map[string]json.RawMessage
				if err := json.Unmarshal(it, &o); err != nil {
					return nil, fmt.Errorf("DICOM JSON item of %s: %w", key, err)
				}
				sub, err := jsonDataset(o, depth+1, budget)
				if err != nil {
					return nil, err
				}
				e.Items = append(e.Items, sub)
			}
		case je.BulkDataURI != "":
			e.BulkURI = je.BulkDataURI
		case je.InlineBinary != "":
			b, err := base64.StdEncoding.DecodeString(je.InlineBinary)
			if err != nil {
				return nil, fmt.Errorf("DICOM JSON element %s: %w", key, err)
			}
			if stringVRs[je.VR] || isBinaryNumber(je.VR) {
				decodeValue(e, b)
			} else {
				e.Raw = b
			}
		default:
			for _, v := range je.Value {
				var f float64
				var s string
				if err := json.Unmarshal(v, &f); err == nil && !stringVRs[je.VR] {
					e.Nums = append(e.Nums, f)
					continue
				}
				if err := json.Unmarshal(v, &s); err == nil {
					e.Strs = append(e.Strs, strings.TrimSpace(s))
					continue
				}
				if err := json.Unmarshal(v, &f); err == nil {
					// DS and IS may come as numbers.
					e.Strs = append(e.Strs, strconv.FormatFloat(f, 'g', -1, 64))
					continue
				}
				var pn map[string]string
				if err := json.Unmarshal(v, &pn); err == nil {
					e.Strs = append(e.Strs, pn["Alphabetic"])
					continue
				}
				e.Strs = append(e.Strs, "")
			}
			if e.Strs == nil && e.Nums == nil && stringVRs[je.VR] {
				e.Strs = []string{}
			}
		}
		ds.add(e)
	}
	return ds, nil
}

func isBinaryNumber(vr string) bool {
	switch vr {
	case "US", "SS", "UL", "SL", "FL", "FD", "AT", "SV", "UV":
		return true
	}
	return false
}
