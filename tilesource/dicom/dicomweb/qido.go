package dicomweb

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tileserver/tileserver/tilesource/dicom"
)

// Attributes read from QIDO-RS answers.
const (
	tagSOPClassUID       dicom.Tag = 0x00080016
	tagSOPInstanceUID    dicom.Tag = 0x00080018
	tagStudyDate         dicom.Tag = 0x00080020
	tagStudyTime         dicom.Tag = 0x00080030
	tagModality          dicom.Tag = 0x00080060
	tagStudyDescription  dicom.Tag = 0x00081030
	tagSeriesDescription dicom.Tag = 0x0008103E
	tagStudyInstanceUID  dicom.Tag = 0x0020000D
	tagSeriesInstanceUID dicom.Tag = 0x0020000E
)

// sopWholeSlide is VL Whole Slide Microscopy Image Storage.
const sopWholeSlide = "1.2.840.10008.5.1.4.1.1.77.1.6"

// Bounds on listing an archive.
const (
	qidoPage      = 1000
	maxListSeries = 100000
)

// SeriesInfo describes one slide series found on an archive.
type SeriesInfo struct {
	Series
	StudyDescription  string
	SeriesDescription string
	// StudyTime is the study's date and time (zero when the archive does
	// not give them).
	StudyTime time.Time
	// Version is a hash of the series' SOP Instance UIDs: DICOM instances
	// are immutable under their UID, so the series' pixels change only
	// when its set of instances does.
	Version string
}

// Skipped is a series ListSeries left out, and why.
type Skipped struct {
	StudyUID, SeriesUID string
	Reason              string
}

// ListSeries finds the whole-slide series of an archive with QIDO-RS: the
// series of modality SM (paged), then each one's instances, keeping series
// with at least one VL Whole Slide Microscopy instance. Series with UIDs
// DICOM does not allow are returned in skipped with the reason, not
// listed. The result is sorted by study and series UID.
func (a *Archives) ListSeries(ctx context.Context, name string, opt OpenOptions) (found []SeriesInfo, skipped []Skipped, err error) {
	c, err := a.conn(Series{Archive: name}, opt)
	if err != nil {
		return nil, nil, err
	}
	for offset := 0; ; offset += qidoPage {
		q := url.Values{"Modality": {"SM"}, "limit": {strconv.Itoa(qidoPage)}, "offset": {strconv.Itoa(offset)},
			"includefield": {"00081030", "0008103E", "00080020", "00080030"}}
		body, err := c.get(ctx, "/series?"+q.Encode(), "application/dicom+json")
		if err != nil {
			return nil, nil, err
		}
		page, err := dicom.ParseJSON(body)
		if err != nil {
			return nil, nil, upstream("invalid series list", err)
		}
		for _, ds := range page {
			if m := ds.Str(tagModality); m != "" && m != "SM" {
				continue // a server that ignores the filter
			}
			si := SeriesInfo{
				Series:           Series{Archive: name, StudyUID: ds.Str(tagStudyInstanceUID), SeriesUID: ds.Str(tagSeriesInstanceUID)},
				StudyDescription: strings.TrimSpace(ds.Str(tagStudyDescription)), SeriesDescription: strings.TrimSpace(ds.Str(tagSeriesDescription)),
				StudyTime: dicomTime(ds.Str(tagStudyDate), ds.Str(tagStudyTime)),
			}
			if err := si.Validate(); err != nil {
				skipped = append(skipped, Skipped{si.StudyUID, si.SeriesUID, err.Error()})
				continue
			}
			found = append(found, si)
		}
		if len(found)+len(skipped) > maxListSeries {
			return nil, nil, upstream(fmt.Sprintf("more than %d slide series", maxListSeries), nil)
		}
		if len(page) < qidoPage {
			break
		}
	}
	out := found[:0]
	for _, si := range found {
		v, ok, err := c.seriesVersion(ctx, si.Series)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			skipped = append(skipped, Skipped{si.StudyUID, si.SeriesUID, "no VL Whole Slide Microscopy instances"})
			continue
		}
		si.Version = v
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].StudyUID != out[j].StudyUID {
			return out[i].StudyUID < out[j].StudyUID
		}
		return out[i].SeriesUID < out[j].SeriesUID
	})
	return out, skipped, nil
}

// seriesVersion lists a series' instances and hashes their SOP Instance
// UIDs; ok is false when none is a whole-slide image.
func (c *conn) seriesVersion(ctx context.Context, s Series) (string, bool, error) {
	q := url.Values{"includefield": {"00080016"}}
	body, err := c.get(ctx, "/studies/"+s.StudyUID+"/series/"+s.SeriesUID+"/instances?"+q.Encode(), "application/dicom+json")
	if err != nil {
		return "", false, err
	}
	list, err := dicom.ParseJSON(body)
	if err != nil {
		return "", false, upstream("invalid instance list", err)
	}
	var uids []string
	wsi := false
	for _, ds := range list {
		uids = append(uids, ds.Str(tagSOPInstanceUID))
		// A server that does not return the SOP class is given the
		// benefit of the doubt: opening the series checks it.
		if cl := ds.Str(tagSOPClassUID); cl == "" || cl == sopWholeSlide {
			wsi = true
		}
	}
	if !wsi {
		return "", false, nil
	}
	sort.Strings(uids)
	sum := sha256.Sum256([]byte(strings.Join(uids, "\n")))
	return fmt.Sprintf("sop-%x", sum[:12]), true, nil
}

// dicomTime reads a DA (YYYYMMDD) and TM (HHMMSS.ffffff, any prefix) pair
// as UTC; a missing or bad date is the zero time.
func dicomTime(da, tm string) time.Time {
	d, err := time.Parse("20060102", strings.TrimSpace(da))
	if err != nil {
		return time.Time{}
	}
	tm = strings.TrimSpace(tm)
	if i := strings.IndexByte(tm, '.'); i >= 0 {
		tm = tm[:i]
	}
	var h, m, s int
	for i, dst := range []*int{&h, &m, &s} {
		if len(tm) >= 2*i+2 {
			*dst, _ = strconv.Atoi(tm[2*i : 2*i+2])
		}
	}
	return d.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}
