package main

// PBM placement that evaluates storage policies against the datastores (see the table in main.go)
// instead of vcsim's "every datastore complies".

import (
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/vmware/govmomi/pbm"
	pbmmethods "github.com/vmware/govmomi/pbm/methods"
	pbmsim "github.com/vmware/govmomi/pbm/simulator"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const tagNamespace = "http://www.vmware.com/storage/tag"

// datastoreTags: datastore name -> tag category -> tag names.
var datastoreTags = struct {
	sync.Mutex
	m map[string]map[string][]string
}{m: map[string]map[string][]string{
	"ds-big": {"tier": {"gold"}},
	"ds-c1":  {"tier": {"gold"}},
}}

func tagsOf(ds string) map[string][]string {
	datastoreTags.Lock()
	defer datastoreTags.Unlock()
	out := map[string][]string{}
	for k, v := range datastoreTags.m[ds] {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// controlTag: POST datastore=<name> category=<name> tag=<name> (empty tag: remove the category).
func controlTag(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	ds, category, tag := r.FormValue("datastore"), r.FormValue("category"), r.FormValue("tag")
	if ds == "" || category == "" {
		http.Error(w, "datastore and category are required", http.StatusBadRequest)
		return
	}
	if datastoreByName(ds) == nil {
		http.Error(w, "no such datastore", http.StatusNotFound)
		return
	}
	datastoreTags.Lock()
	defer datastoreTags.Unlock()
	if datastoreTags.m[ds] == nil {
		datastoreTags.m[ds] = map[string][]string{}
	}
	if tag == "" {
		delete(datastoreTags.m[ds], category)
	} else {
		datastoreTags.m[ds][category] = []string{tag}
	}
	w.WriteHeader(http.StatusNoContent)
}

type placementSolver struct {
	pbmsim.PlacementSolver
}

// installPlacementSolver replaces vcsim's PBM placement solver object with ours.
func installPlacementSolver(svc *simulator.Service) error {
	reg := registryOf(svc, pbm.Path)
	if reg == nil {
		return fmt.Errorf("no PBM endpoint on %s", pbm.Path)
	}
	ref := types.ManagedObjectReference{Type: "PbmPlacementSolver", Value: "placementSolver"}
	reg.Put(&placementSolver{pbmsim.PlacementSolver{ManagedObjectReference: ref}})
	return nil
}

func (s *placementSolver) PbmCheckRequirements(req *pbmtypes.PbmCheckRequirements) soap.HasFault {
	body := new(pbmmethods.PbmCheckRequirementsBody)
	var constraints []pbmtypes.BasePbmCapabilityConstraints
	for _, r := range req.PlacementSubjectRequirement {
		switch x := r.(type) {
		case *pbmtypes.PbmPlacementCapabilityProfileRequirement:
			c, f := profileConstraints(x.ProfileId)
			if f != nil {
				body.Fault_ = fault("", f)
				return body
			}
			constraints = append(constraints, c)
		case *pbmtypes.PbmPlacementCapabilityConstraintsRequirement:
			constraints = append(constraints, x.Constraints)
		}
	}
	body.Res = &pbmtypes.PbmCheckRequirementsResponse{Returnval: check(req.HubsToSearch, constraints)}
	return body
}

func (s *placementSolver) PbmCheckCompatibility(req *pbmtypes.PbmCheckCompatibility) soap.HasFault {
	body := new(pbmmethods.PbmCheckCompatibilityBody)
	c, f := profileConstraints(req.Profile)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	body.Res = &pbmtypes.PbmCheckCompatibilityResponse{
		Returnval: check(req.HubsToSearch, []pbmtypes.BasePbmCapabilityConstraints{c})}
	return body
}

func (s *placementSolver) PbmQueryMatchingHub(req *pbmtypes.PbmQueryMatchingHub) soap.HasFault {
	body := new(pbmmethods.PbmQueryMatchingHubBody)
	c, f := profileConstraints(req.Profile)
	if f != nil {
		body.Fault_ = fault("", f)
		return body
	}
	body.Res = new(pbmtypes.PbmQueryMatchingHubResponse)
	for _, r := range check(req.HubsToSearch, []pbmtypes.BasePbmCapabilityConstraints{c}) {
		if len(r.Error) == 0 {
			body.Res.Returnval = append(body.Res.Returnval, r.Hub)
		}
	}
	return body
}

// profileConstraints reads a profile's rules through vcsim's own profile manager.
func profileConstraints(id pbmtypes.PbmProfileId) (pbmtypes.BasePbmCapabilityConstraints, types.BaseMethodFault) {
	res := new(pbmsim.ProfileManager).PbmRetrieveContent(&pbmtypes.PbmRetrieveContent{
		ProfileIds: []pbmtypes.PbmProfileId{id}})
	if f := res.Fault(); f != nil {
		return nil, &types.InvalidArgument{InvalidProperty: "profileId"}
	}
	for _, p := range res.(*pbmmethods.PbmRetrieveContentBody).Res.Returnval {
		if cp, ok := p.(*pbmtypes.PbmCapabilityProfile); ok {
			return cp.Constraints, nil
		}
	}
	return nil, nil
}

// check answers one result per hub (every datastore when hubs is empty); a hub that does not meet
// all the constraints gets a PbmPropertyMismatchFault in its error list.
func check(hubs []pbmtypes.PbmPlacementHub, constraints []pbmtypes.BasePbmCapabilityConstraints) []pbmtypes.PbmPlacementCompatibilityResult {
	if len(hubs) == 0 {
		for _, e := range simulator.Map.All("Datastore") {
			hubs = append(hubs, pbmtypes.PbmPlacementHub{HubType: "Datastore", HubId: e.Reference().Value})
		}
	}
	var out []pbmtypes.PbmPlacementCompatibilityResult
	for _, hub := range hubs {
		result := pbmtypes.PbmPlacementCompatibilityResult{Hub: hub}
		ds, _ := simulator.Map.Get(types.ManagedObjectReference{Type: "Datastore", Value: hub.HubId}).(*simulator.Datastore)
		if hub.HubType != "Datastore" || ds == nil {
			result.Error = append(result.Error, types.LocalizedMethodFault{
				Fault:            &pbmtypes.PbmCompatibilityCheckFault{Hub: hub},
				LocalizedMessage: "Unknown placement hub " + hub.HubType + ":" + hub.HubId,
			})
			out = append(out, result)
			continue
		}
		for _, c := range constraints {
			if miss := unmet(ds, c); miss != nil {
				miss.Hub = hub
				result.Error = append(result.Error, types.LocalizedMethodFault{
					Fault: miss,
					LocalizedMessage: fmt.Sprintf("Datastore %s does not satisfy compatibility since it does not "+
						"support one or more required properties (%s).", ds.Name, miss.CapabilityInstanceId.Id),
				})
				break
			}
		}
		out = append(out, result)
	}
	return out
}

// unmet returns nil when ds meets the constraints (any one rule set, all rules of it), else the
// first unmet rule of the first rule set.
func unmet(ds *simulator.Datastore, c pbmtypes.BasePbmCapabilityConstraints) *pbmtypes.PbmPropertyMismatchFault {
	sub, ok := c.(*pbmtypes.PbmCapabilitySubProfileConstraints)
	if !ok || len(sub.SubProfiles) == 0 {
		return nil // a policy without rules
	}
	var first *pbmtypes.PbmPropertyMismatchFault
	for _, set := range sub.SubProfiles {
		miss := unmetRuleSet(ds, set)
		if miss == nil {
			return nil
		}
		if first == nil {
			first = miss
		}
	}
	return first
}

func unmetRuleSet(ds *simulator.Datastore, set pbmtypes.PbmCapabilitySubProfile) *pbmtypes.PbmPropertyMismatchFault {
	for _, rule := range set.Capability {
		if len(rule.Constraint) == 0 {
			continue
		}
		met := false
		var firstProp pbmtypes.PbmCapabilityPropertyInstance
		for i, alt := range rule.Constraint { // alternatives
			all := true
			for j, prop := range alt.PropertyInstance {
				if i == 0 && j == 0 {
					firstProp = prop
				}
				if !meets(ds, rule.Id, prop) {
					all = false
					break
				}
			}
			if all {
				met = true
				break
			}
		}
		if !met {
			return &pbmtypes.PbmPropertyMismatchFault{CapabilityInstanceId: rule.Id, RequirementPropertyInstance: firstProp}
		}
	}
	return nil
}

func meets(ds *simulator.Datastore, id pbmtypes.PbmCapabilityMetadataUniqueId, prop pbmtypes.PbmCapabilityPropertyInstance) bool {
	dsType := strings.ToLower(ds.Summary.Type)
	var ok bool
	switch id.Namespace {
	case tagNamespace:
		have := tagsOf(ds.Name)[id.Id]
		ok = false
		for _, want := range values(prop.Value) {
			for _, h := range have {
				if h == want {
					ok = true
				}
			}
		}
	case "VSAN":
		ok = dsType == "vsan"
	case "PMem":
		ok = dsType == "pmem"
	case "com.vmware.storageprofile.dataservice":
		ok = true
	default:
		ok = false
	}
	if strings.EqualFold(prop.Operator, "NOT") {
		return !ok
	}
	return ok
}

// values flattens a property value: a string, or a PbmCapabilityDiscreteSet of strings.
func values(v types.AnyType) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case *pbmtypes.PbmCapabilityDiscreteSet:
		var out []string
		for _, e := range x.Values {
			out = append(out, values(e)...)
		}
		return out
	case pbmtypes.PbmCapabilityDiscreteSet:
		return values(&x)
	case []string:
		return x
	case types.ArrayOfString:
		return x.String
	}
	return nil
}
