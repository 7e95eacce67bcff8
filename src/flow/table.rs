//! The flow table: every flow of every protocol (TCP, spliced TCP, UDP,
//! ICMP echo) lives in one fixed-capacity table, so the limit of
//! REFERENCE.md §4 (131 071 flows, upstream's `flowtab`) is shared by all
//! of them (REFERENCE.md §2.1).
//!
//! # Flows and sides
//! A flow has a [`Protocol`] and two [`Side`]s. The [`Side::Guest`] side
//! faces the guest: the tap ([`Pif::Tap`]) or, for pasta's spliced flows,
//! the socket inside the namespace ([`Pif::Splice`]). The [`Side::Host`]
//! side is the host socket ([`Pif::Host`]). Each side is a [`FlowSide`]:
//! its pif, our address and port on that side, and the endpoint's address
//! and port, as upstream's `flowside`. Who initiated the flow is the
//! protocol's business, kept in its state.
//!
//! Addresses are `std::net::IpAddr`, stored in canonical form: an
//! IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
//! peer) is stored and matched as IPv4, so each address has one form, as
//! with upstream's `inany`. Scope ids are not part of a side (upstream
//! neither keeps them).
//!
//! # Per-protocol state
//! [`FlowTable<T>`] is generic over the state `T` kept in each slot. The
//! engine instantiates one table with an enum of the protocols' state
//! types, so they share the capacity while each protocol module keeps its
//! own typed state; the table never looks inside `T`.
//!
//! # Slots, ids and stale events
//! Slot storage is reserved for the full capacity at construction and never
//! reallocated; its length is a high-water mark, so slots never used cost
//! no resident memory (upstream's static table in BSS behaves the same).
//! Free slots form an intrusive LIFO list: O(1) allocation that reuses a
//! cache-warm slot (upstream takes the lowest free index instead).
//!
//! A [`FlowId`] is one `u32`, so it fits an event token's index as it is:
//! the low [`INDEX_BITS`] bits are the slot, the high 12 bits the slot's
//! generation, bumped each time a flow leaves the slot. An id whose
//! generation does not match finds nothing, so an event reported for a
//! flow that closed earlier in the same wake-up cannot touch the flow that
//! took its slot. The generation wraps after 4096 reuses of one slot; a
//! stale id lives at most until the end of its epoll batch (tens of
//! events), far fewer reuses than that.
//!
//! A dense list of live slots makes iteration ([`FlowTable::iter`],
//! [`FlowTable::retain`] for idle expiry) O(live flows), not O(capacity).
//!
//! # Lookup
//! [`FlowTable::lookup`] finds a flow from (protocol, one side's pif and
//! 4-tuple) in O(1): open addressing with linear probing, as upstream. A
//! side is found only if it was indexed ([`Indexed`]): TCP indexes the
//! guest side (host socket events carry the id in their token), UDP both
//! sides, spliced flows neither.
//!
//! - Hash: SipHash keyed with a random 128-bit secret per table (std's
//!   `RandomState`; its `DefaultHasher` is SipHash-1-3, upstream uses
//!   SipHash-2-4 with a `getrandom` key), so a guest cannot choose keys
//!   that collide.
//! - Buckets: a power of two, at least 4x the capacity, so with two sides
//!   per flow the load stays at or below 1/2 (upstream: 374 488 buckets for
//!   131 071 flows, load 0.7). Expected probes: about 1.5 for a hit, 2.5 for
//!   a miss. Each bucket is a `u64`: the low 32 bits of the hash (whose low
//!   bits are the home bucket) and a side reference, so most mismatches are
//!   rejected without touching the flow's slot. Zero means empty, so the
//!   bucket array comes from zeroed pages that stay untouched until used.
//! - Bounded probes: no entry ever sits [`MAX_PROBE`] or more buckets past
//!   its home; an insertion that would is refused
//!   ([`InsertError::ProbeLimit`]), so no lookup scans more than
//!   [`MAX_PROBE`] buckets even if the hash were defeated. With a keyed hash
//!   at load 1/2 this does not happen in practice: filling the default
//!   capacity 150 times gave a longest displacement of 23-53 (median 32);
//!   the tail shrinks about e-fold every 5 buckets.
//! - Removal by backward shift (no tombstones; displacements only shrink),
//!   like upstream's `flow_hash_remove()`.
//!
//! # Insertion and failure
//! [`FlowTable::vacant`] checks everything first (capacity, duplicate keys,
//! probe bound) and reserves the slot: the caller learns the [`FlowId`]
//! before committing, opens and registers its socket with that id as the
//! token, then commits with [`VacantFlow::insert`], or drops the
//! [`VacantFlow`] to cancel. At capacity it fails with [`InsertError::Full`]
//! (the caller drops or resets and counts); existing flows are untouched.
//!
//! Nothing here allocates after construction.
//! Neighbours: the protocol modules (`tcp`, `udp`, `icmp`) own the state
//! and the sockets; `event` carries [`FlowId::raw`] in its tokens.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::mem;
use std::net::IpAddr;

/// Upstream's flow limit (`FLOW_MAX`, 2^17 - 1).
pub const DEFAULT_CAPACITY: usize = 131_071;

/// Bits of a [`FlowId`] that hold the slot index.
pub const INDEX_BITS: u32 = 20;

/// Largest capacity a table can have (slot indexes must fit
/// [`INDEX_BITS`]).
pub const MAX_CAPACITY: usize = 1 << INDEX_BITS;

/// Mask of the generation kept in a slot and in the high bits of a
/// [`FlowId`].
const GEN_MASK: u16 = (1 << (32 - INDEX_BITS)) - 1;

/// No hash entry is ever this many buckets or more past its home bucket.
pub const MAX_PROBE: usize = 128;

/// End of the free list.
const NIL: u32 = u32::MAX;

/// Length of the bytes a side's key is hashed from.
const KEY_LEN: usize = 38;

/// Transport protocol of a flow; the values are IP protocol numbers.
/// ICMP and ICMPv6 echo flows are distinct protocols, as upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Protocol {
    /// ICMP echo (ping sockets).
    Icmp = 1,
    /// TCP, through the tap or spliced.
    Tcp = 6,
    /// UDP.
    Udp = 17,
    /// ICMPv6 echo (ping sockets).
    Icmpv6 = 58,
}

/// Packet interface: where a side's packets come from and go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Pif {
    /// The guest's link (tap device or qemu socket).
    Tap = 1,
    /// Sockets in the host's (pasta: the init) namespace.
    Host = 2,
    /// Sockets inside pasta's namespace (spliced flows).
    Splice = 3,
}

/// One of a flow's two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Faces the guest: the tap, or the namespace socket of a spliced flow.
    Guest = 0,
    /// Faces the host: the host socket.
    Host = 1,
}

impl Side {
    /// The opposite side.
    pub const fn other(self) -> Side {
        match self {
            Side::Guest => Side::Host,
            Side::Host => Side::Guest,
        }
    }
}

/// One side of a flow, as seen from that side's pif: our address and port
/// there, and the endpoint's. Also the lookup key of that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowSide {
    /// Where this side's packets travel.
    pub pif: Pif,
    /// Our address on this side (what the endpoint sends to).
    pub our_addr: IpAddr,
    /// Our port (for ICMP echo: the identifier).
    pub our_port: u16,
    /// The endpoint's address on this side.
    pub end_addr: IpAddr,
    /// The endpoint's port (for ICMP echo: the identifier).
    pub end_port: u16,
}

impl FlowSide {
    /// The same side with IPv4-mapped addresses as IPv4.
    fn canonical(self) -> FlowSide {
        FlowSide {
            our_addr: self.our_addr.to_canonical(),
            end_addr: self.end_addr.to_canonical(),
            ..self
        }
    }

    /// The bytes a (canonical) side is hashed from.
    fn key_bytes(&self, proto: Protocol) -> [u8; KEY_LEN] {
        let mut k = [0; KEY_LEN];
        k[0] = proto as u8;
        k[1] = self.pif as u8;
        k[2..18].copy_from_slice(&addr_bytes(self.our_addr));
        k[18..20].copy_from_slice(&self.our_port.to_be_bytes());
        k[20..36].copy_from_slice(&addr_bytes(self.end_addr));
        k[36..38].copy_from_slice(&self.end_port.to_be_bytes());
        k
    }
}

/// 16 bytes of an address, IPv4 as IPv4-mapped.
fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// A flow's identity: slot index and generation in one `u32`, used as the
/// index of its sockets' event tokens. Valid while the flow lives; after
/// removal it finds nothing, even once the slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId(u32);

impl FlowId {
    fn new(index: u32, generation: u16) -> FlowId {
        FlowId(u32::from(generation) << INDEX_BITS | index)
    }

    /// The id carried in `raw` (an event token's index). Any value is
    /// accepted; one that names no live flow finds nothing.
    pub const fn from_raw(raw: u32) -> FlowId {
        FlowId(raw)
    }

    /// The id as a `u32`, for an event token's index.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The slot index, below the table's capacity for ids it handed out.
    pub const fn index(self) -> usize {
        (self.0 & ((1 << INDEX_BITS) - 1)) as usize
    }

    fn generation(self) -> u16 {
        (self.0 >> INDEX_BITS) as u16
    }
}

/// Which sides of a new flow [`FlowTable::lookup`] can find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexed {
    /// Found only through its id (e.g. spliced flows: socket tokens).
    Neither,
    /// The guest side (e.g. TCP: guest segments are looked up).
    Guest,
    /// The host side.
    Host,
    /// Both sides (e.g. UDP: datagrams arrive on shared sockets).
    Both,
}

impl Indexed {
    fn has(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Indexed::Both, _) | (Indexed::Guest, Side::Guest) | (Indexed::Host, Side::Host)
        )
    }
}

/// Why a flow (or a side) could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// Every slot is taken.
    #[error("flow table full")]
    Full,
    /// Another indexed side has the same protocol, pif and addresses.
    #[error("flow already exists")]
    Duplicate,
    /// The side's hash chain is too long (see [`MAX_PROBE`]).
    #[error("flow hash chain too long")]
    ProbeLimit,
}

/// A live flow: protocol and sides (fixed by the table) plus the
/// protocol's state.
#[derive(Debug)]
pub struct Flow<T> {
    proto: Protocol,
    sides: [FlowSide; 2],
    /// Hash of each indexed side (its bucket's tag); `None`: not indexed.
    tags: [Option<u32>; 2],
    /// The protocol's state.
    pub state: T,
}

impl<T> Flow<T> {
    /// The flow's protocol.
    pub fn proto(&self) -> Protocol {
        self.proto
    }

    /// One side of the flow (addresses in canonical form).
    pub fn side(&self, side: Side) -> &FlowSide {
        &self.sides[side as usize]
    }
}

enum Entry<T> {
    Free { next: u32 },
    Live { pos: u32, flow: Flow<T> },
}

struct Slot<T> {
    generation: u16,
    entry: Entry<T>,
}

/// Hash bucket: low 32 bits the hash tag, high 32 bits the side reference
/// (slot index * 2 + side) plus one; zero is empty.
fn bucket(tag: u32, index: u32, side: Side) -> u64 {
    (u64::from(index * 2 + side as u32) + 1) << 32 | u64::from(tag)
}

fn bucket_tag(b: u64) -> u32 {
    b as u32
}

fn bucket_ref(b: u64) -> (u32, Side) {
    let sidx = (b >> 32) as u32 - 1;
    let side = if sidx & 1 == 0 {
        Side::Guest
    } else {
        Side::Host
    };
    (sidx / 2, side)
}

/// The flows of every protocol, with per-protocol state `T`. `S` is the
/// hasher's key source (a random key per table by default).
pub struct FlowTable<T, S = RandomState> {
    /// Reserved for `capacity` slots; the length is the high-water mark.
    slots: Vec<Slot<T>>,
    capacity: usize,
    free_head: u32,
    /// Indexes of the live slots, in no order.
    live: Vec<u32>,
    buckets: Vec<u64>,
    mask: usize,
    hasher: S,
}

impl<T> FlowTable<T> {
    /// A table for at most `capacity` flows, all memory allocated now,
    /// hashed with a fresh random key.
    ///
    /// # Panics
    /// If `capacity` is 0 or above [`MAX_CAPACITY`].
    pub fn new(capacity: usize) -> FlowTable<T> {
        FlowTable::build(capacity, RandomState::new())
    }
}

impl<T, S: BuildHasher> FlowTable<T, S> {
    fn build(capacity: usize, hasher: S) -> FlowTable<T, S> {
        assert!(
            (1..=MAX_CAPACITY).contains(&capacity),
            "flow table capacity {capacity} out of range"
        );
        let n_buckets = (capacity * 4).next_power_of_two();
        FlowTable {
            slots: Vec::with_capacity(capacity),
            capacity,
            free_head: NIL,
            live: Vec::with_capacity(capacity),
            buckets: vec![0; n_buckets],
            mask: n_buckets - 1,
            hasher,
        }
    }

    /// Flows the table can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live flows.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// No live flows.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Every slot is taken: the next insertion fails with
    /// [`InsertError::Full`].
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity
    }

    /// The live flow `id` names, if it still lives.
    pub fn get(&self, id: FlowId) -> Option<&Flow<T>> {
        let slot = self.slots.get(id.index())?;
        match &slot.entry {
            Entry::Live { flow, .. } if slot.generation == id.generation() => Some(flow),
            _ => None,
        }
    }

    /// The live flow `id` names, mutably (its sides stay fixed: see
    /// [`FlowTable::set_side`]).
    pub fn get_mut(&mut self, id: FlowId) -> Option<&mut Flow<T>> {
        let slot = self.slots.get_mut(id.index())?;
        match &mut slot.entry {
            Entry::Live { flow, .. } if slot.generation == id.generation() => Some(flow),
            _ => None,
        }
    }

    /// The flow of protocol `proto` with an indexed side equal to `key`,
    /// and which side matched.
    pub fn lookup(&self, proto: Protocol, key: &FlowSide) -> Option<(FlowId, Side)> {
        let key = key.canonical();
        let tag = self.hash(proto, &key);
        let mut pos = self.home(tag);
        for _ in 0..MAX_PROBE {
            let b = self.buckets[pos];
            if b == 0 {
                return None;
            }
            if let Some(found) = self.bucket_matches(b, tag, proto, &key) {
                return Some(found);
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// Checks that a flow with these sides can be added and reserves a
    /// slot for it; nothing changes until [`VacantFlow::insert`].
    pub fn vacant(
        &mut self,
        proto: Protocol,
        guest: FlowSide,
        host: FlowSide,
        indexed: Indexed,
    ) -> Result<VacantFlow<'_, T, S>, InsertError> {
        let index = self.next_free().ok_or(InsertError::Full)?;
        let sides = [guest.canonical(), host.canonical()];
        if indexed == Indexed::Both && sides[0] == sides[1] {
            return Err(InsertError::Duplicate);
        }
        let mut places = [None; 2];
        let mut reserved = None;
        for side in [Side::Guest, Side::Host] {
            if indexed.has(side) {
                let key = &sides[side as usize];
                let tag = self.hash(proto, key);
                let pos = self.insert_pos(proto, key, tag, reserved)?;
                reserved = Some(pos);
                places[side as usize] = Some((tag, pos));
            }
        }
        Ok(VacantFlow {
            table: self,
            index,
            proto,
            sides,
            places,
        })
    }

    /// Adds a flow: [`FlowTable::vacant`] and [`VacantFlow::insert`] in one.
    pub fn insert(
        &mut self,
        proto: Protocol,
        guest: FlowSide,
        host: FlowSide,
        indexed: Indexed,
        state: T,
    ) -> Result<FlowId, InsertError> {
        Ok(self.vacant(proto, guest, host, indexed)?.insert(state))
    }

    /// Replaces one side of flow `id` (e.g. once the kernel picked our
    /// port) and indexes it (`indexed`) or not. On error nothing changes.
    /// Returns `Ok` without effect if `id` is stale.
    pub fn set_side(
        &mut self,
        id: FlowId,
        side: Side,
        new: FlowSide,
        indexed: bool,
    ) -> Result<(), InsertError> {
        let new = new.canonical();
        let Some(flow) = self.get(id) else {
            return Ok(());
        };
        let (proto, i, o) = (flow.proto, side as usize, side.other() as usize);
        let old_tag = flow.tags[i];
        if indexed && old_tag.is_some() && flow.sides[i] == new {
            return Ok(());
        }
        if indexed && flow.tags[o].is_some() && flow.sides[o] == new {
            return Err(InsertError::Duplicate);
        }
        let new_tag = if indexed {
            let tag = self.hash(proto, &new);
            self.insert_pos(proto, &new, tag, None)?;
            Some(tag)
        } else {
            None
        };
        let index = id.index() as u32;
        if let Some(tag) = old_tag {
            self.unhash(tag, index, side);
        }
        let tag = new_tag.and_then(|tag| {
            // Found above; removing the old entry only shortened chains.
            let pos = self.insert_pos(proto, &new, tag, None).ok()?;
            self.buckets[pos] = bucket(tag, index, side);
            Some(tag)
        });
        if let Some(flow) = self.get_mut(id) {
            flow.sides[i] = new;
            flow.tags[i] = tag;
        }
        Ok(())
    }

    /// Removes flow `id` and returns it; `None` if `id` is stale.
    pub fn remove(&mut self, id: FlowId) -> Option<Flow<T>> {
        self.get(id)?;
        let index = id.index();
        let slot = &mut self.slots[index];
        let entry = mem::replace(
            &mut slot.entry,
            Entry::Free {
                next: self.free_head,
            },
        );
        slot.generation = slot.generation.wrapping_add(1) & GEN_MASK;
        self.free_head = index as u32;
        let Entry::Live { pos, flow } = entry else {
            return None;
        };
        self.unlist(pos as usize);
        for side in [Side::Guest, Side::Host] {
            if let Some(tag) = flow.tags[side as usize] {
                self.unhash(tag, index as u32, side);
            }
        }
        Some(flow)
    }

    /// The live flows, in no particular order; O(live flows).
    pub fn iter(&self) -> impl Iterator<Item = (FlowId, &Flow<T>)> {
        self.live.iter().filter_map(|&index| {
            let slot = &self.slots[index as usize];
            match &slot.entry {
                Entry::Live { flow, .. } => Some((FlowId::new(index, slot.generation), flow)),
                Entry::Free { .. } => None,
            }
        })
    }

    /// Calls `keep` on every live flow and removes those it returns
    /// `false` for (after it closed their sockets); O(live flows). This is
    /// the timers' scan, e.g. idle expiry.
    pub fn retain(&mut self, mut keep: impl FnMut(FlowId, &mut Flow<T>) -> bool) {
        let mut i = 0;
        while i < self.live.len() {
            let index = self.live[i];
            let slot = &mut self.slots[index as usize];
            let id = FlowId::new(index, slot.generation);
            let kept = match &mut slot.entry {
                Entry::Live { flow, .. } => keep(id, flow),
                Entry::Free { .. } => true,
            };
            if kept {
                i += 1;
            } else {
                // The last live slot moves into position `i`.
                self.remove(id);
            }
        }
    }

    /// The slot the next flow takes, if any.
    fn next_free(&self) -> Option<u32> {
        if self.free_head != NIL {
            Some(self.free_head)
        } else if self.slots.len() < self.capacity {
            Some(self.slots.len() as u32)
        } else {
            None
        }
    }

    /// Puts a reserved flow into slot `index`.
    fn occupy(&mut self, index: u32, flow: Flow<T>) -> FlowId {
        let pos = self.live.len() as u32;
        self.live.push(index);
        let entry = Entry::Live { pos, flow };
        if index as usize == self.slots.len() {
            self.slots.push(Slot {
                generation: 0,
                entry,
            });
            return FlowId::new(index, 0);
        }
        let slot = &mut self.slots[index as usize];
        if let Entry::Free { next } = mem::replace(&mut slot.entry, entry) {
            self.free_head = next;
        }
        FlowId::new(index, slot.generation)
    }

    /// Drops position `pos` from the live list.
    fn unlist(&mut self, pos: usize) {
        self.live.swap_remove(pos);
        if let Some(&moved) = self.live.get(pos)
            && let Entry::Live { pos: p, .. } = &mut self.slots[moved as usize].entry
        {
            *p = pos as u32;
        }
    }

    fn hash(&self, proto: Protocol, key: &FlowSide) -> u32 {
        let mut h = self.hasher.build_hasher();
        h.write(&key.key_bytes(proto));
        h.finish() as u32
    }

    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    /// The side bucket `b` refers to, if it is `key`'s.
    fn bucket_matches(
        &self,
        b: u64,
        tag: u32,
        proto: Protocol,
        key: &FlowSide,
    ) -> Option<(FlowId, Side)> {
        if bucket_tag(b) != tag {
            return None;
        }
        let (index, side) = bucket_ref(b);
        let slot = &self.slots[index as usize];
        match &slot.entry {
            Entry::Live { flow, .. }
                if flow.proto == proto && flow.sides[side as usize] == *key =>
            {
                Some((FlowId::new(index, slot.generation), side))
            }
            _ => None,
        }
    }

    /// The empty bucket `key` would go to, treating `reserved` as taken.
    fn insert_pos(
        &self,
        proto: Protocol,
        key: &FlowSide,
        tag: u32,
        reserved: Option<usize>,
    ) -> Result<usize, InsertError> {
        let mut pos = self.home(tag);
        for _ in 0..MAX_PROBE {
            let b = self.buckets[pos];
            if b == 0 && reserved != Some(pos) {
                return Ok(pos);
            }
            if b != 0 && self.bucket_matches(b, tag, proto, key).is_some() {
                return Err(InsertError::Duplicate);
            }
            pos = (pos + 1) & self.mask;
        }
        Err(InsertError::ProbeLimit)
    }

    /// Removes the bucket of `index`'s `side`, hashed to `tag`, shifting
    /// the rest of its cluster back.
    fn unhash(&mut self, tag: u32, index: u32, side: Side) {
        let target = bucket(tag, index, side);
        let mut hole = self.home(tag);
        let mut probes = 0;
        while self.buckets[hole] != target {
            hole = (hole + 1) & self.mask;
            probes += 1;
            if probes == MAX_PROBE {
                debug_assert!(false, "flow table: indexed side not in its chain");
                return;
            }
        }
        let mut pos = hole;
        loop {
            pos = (pos + 1) & self.mask;
            let b = self.buckets[pos];
            if b == 0 {
                break;
            }
            // Move `b` back into the hole if the hole lies on its chain.
            let displacement = pos.wrapping_sub(self.home(bucket_tag(b))) & self.mask;
            if pos.wrapping_sub(hole) & self.mask <= displacement {
                self.buckets[hole] = b;
                hole = pos;
            }
        }
        self.buckets[hole] = 0;
    }
}

/// A checked, reserved slot for a new flow (see [`FlowTable::vacant`]).
/// Dropping it leaves the table unchanged.
pub struct VacantFlow<'a, T, S> {
    table: &'a mut FlowTable<T, S>,
    index: u32,
    proto: Protocol,
    sides: [FlowSide; 2],
    /// Hash tag and bucket of each side to index.
    places: [Option<(u32, usize)>; 2],
}

impl<T, S: BuildHasher> VacantFlow<'_, T, S> {
    /// The id the flow will have once inserted.
    pub fn id(&self) -> FlowId {
        let generation = self
            .table
            .slots
            .get(self.index as usize)
            .map_or(0, |s| s.generation);
        FlowId::new(self.index, generation)
    }

    /// Adds the flow with its state; lookups find it from now on.
    pub fn insert(self, state: T) -> FlowId {
        let flow = Flow {
            proto: self.proto,
            sides: self.sides,
            tags: self.places.map(|p| p.map(|(tag, _)| tag)),
            state,
        };
        let id = self.table.occupy(self.index, flow);
        for side in [Side::Guest, Side::Host] {
            if let Some((tag, pos)) = self.places[side as usize] {
                self.table.buckets[pos] = bucket(tag, self.index, side);
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::hash::BuildHasherDefault;
    use std::net::Ipv4Addr;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn side(pif: Pif, our: (IpAddr, u16), end: (IpAddr, u16)) -> FlowSide {
        FlowSide {
            pif,
            our_addr: our.0,
            our_port: our.1,
            end_addr: end.0,
            end_port: end.1,
        }
    }

    /// A guest connection from 192.0.2.10:`port` to 198.51.100.2:80.
    fn tcp_sides(port: u16) -> (FlowSide, FlowSide) {
        let guest = side(
            Pif::Tap,
            (v4([198, 51, 100, 2]), 80),
            (v4([192, 0, 2, 10]), port),
        );
        let host = side(
            Pif::Host,
            (v4([192, 0, 2, 1]), port),
            (v4([198, 51, 100, 2]), 80),
        );
        (guest, host)
    }

    fn insert_tcp(t: &mut FlowTable<u32>, port: u16, state: u32) -> Result<FlowId, InsertError> {
        let (g, h) = tcp_sides(port);
        t.insert(Protocol::Tcp, g, h, Indexed::Both, state)
    }

    #[test]
    fn flow_table_finds_both_sides_until_removed() {
        let mut t = FlowTable::new(16);
        let (g, h) = tcp_sides(40000);
        let id = t.insert(Protocol::Tcp, g, h, Indexed::Both, 7).unwrap();
        assert_eq!(t.lookup(Protocol::Tcp, &g), Some((id, Side::Guest)));
        assert_eq!(t.lookup(Protocol::Tcp, &h), Some((id, Side::Host)));
        let flow = t.get(id).unwrap();
        assert_eq!((flow.proto(), flow.state), (Protocol::Tcp, 7));
        assert_eq!((*flow.side(Side::Guest), *flow.side(Side::Host)), (g, h));
        t.get_mut(id).unwrap().state = 8;
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(id).map(|f| f.state), Some(8));
        assert_eq!(t.lookup(Protocol::Tcp, &g), None);
        assert_eq!(t.lookup(Protocol::Tcp, &h), None);
        assert!(t.get(id).is_none() && t.is_empty());
        assert!(t.remove(id).is_none(), "second removal finds nothing");
    }

    #[test]
    fn flow_table_lookups_that_differ_in_any_field_miss() {
        let mut t = FlowTable::new(16);
        let (g, h) = tcp_sides(40000);
        t.insert(Protocol::Tcp, g, h, Indexed::Both, 0).unwrap();
        let misses = [
            FlowSide {
                pif: Pif::Splice,
                ..g
            },
            FlowSide { our_port: 81, ..g },
            FlowSide {
                end_port: 40001,
                ..g
            },
            FlowSide {
                our_addr: v4([198, 51, 100, 3]),
                ..g
            },
            FlowSide {
                end_addr: v4([192, 0, 2, 11]),
                ..g
            },
            FlowSide {
                end_addr: v6("2001:db8::a"),
                ..g
            },
            // Our and endpoint swapped.
            side(g.pif, (g.end_addr, g.end_port), (g.our_addr, g.our_port)),
        ];
        for key in misses {
            assert_eq!(t.lookup(Protocol::Tcp, &key), None, "{key:?}");
        }
        assert_eq!(t.lookup(Protocol::Udp, &g), None, "other protocol");
        assert_eq!(FlowTable::<u32>::new(4).lookup(Protocol::Tcp, &g), None);
    }

    #[test]
    fn flow_table_full_refuses_new_flows_and_keeps_the_others() {
        let mut t = FlowTable::new(3);
        let ids: Vec<_> = (0..3)
            .map(|i| insert_tcp(&mut t, 1000 + i, i.into()).unwrap())
            .collect();
        assert!(t.is_full());
        assert_eq!(insert_tcp(&mut t, 2000, 9), Err(InsertError::Full));
        assert_eq!(t.len(), 3);
        for (i, id) in ids.iter().enumerate() {
            let (g, h) = tcp_sides(1000 + i as u16);
            assert_eq!(t.lookup(Protocol::Tcp, &g), Some((*id, Side::Guest)));
            assert_eq!(t.lookup(Protocol::Tcp, &h), Some((*id, Side::Host)));
            assert_eq!(t.get(*id).unwrap().state, i as u32);
        }
        assert_eq!(t.lookup(Protocol::Tcp, &tcp_sides(2000).0), None);
        t.remove(ids[1]);
        assert!(
            insert_tcp(&mut t, 2000, 9).is_ok(),
            "a freed slot is usable"
        );
    }

    #[test]
    fn flow_table_reused_slot_rejects_the_stale_id() {
        let mut t = FlowTable::new(1);
        let old = insert_tcp(&mut t, 1, 1).unwrap();
        t.remove(old);
        let new = insert_tcp(&mut t, 2, 2).unwrap();
        assert_eq!(old.index(), new.index(), "the one slot is reused");
        assert_ne!(old, new);
        assert!(t.get(old).is_none() && t.get_mut(old).is_none());
        assert!(t.remove(old).is_none());
        assert!(t.set_side(old, Side::Guest, tcp_sides(3).0, true).is_ok());
        assert_eq!(t.get(FlowId::from_raw(new.raw())).unwrap().state, 2);
        assert_eq!(
            t.lookup(Protocol::Tcp, &tcp_sides(2).0),
            Some((new, Side::Guest))
        );
        assert_eq!(t.lookup(Protocol::Tcp, &tcp_sides(3).0), None);
    }

    #[test]
    fn flow_table_ids_from_foreign_tokens_find_nothing() {
        let mut t = FlowTable::new(4);
        insert_tcp(&mut t, 1, 1).unwrap();
        for raw in [1, 3, 4, (1 << INDEX_BITS) - 1, 1 << INDEX_BITS, u32::MAX] {
            assert!(t.get(FlowId::from_raw(raw)).is_none(), "{raw:#x}");
        }
    }

    #[test]
    fn flow_table_generation_wraps_without_reviving_live_ids() {
        let mut t = FlowTable::new(1);
        let first = insert_tcp(&mut t, 1, 0).unwrap();
        let mut last = first;
        for i in 0..=u32::from(GEN_MASK) {
            t.remove(last);
            last = insert_tcp(&mut t, 1, i).unwrap();
            assert_eq!(last.index(), 0);
        }
        assert_eq!(last, first, "generation wrapped after 4096 reuses");
        assert_eq!(t.get(last).unwrap().state, u32::from(GEN_MASK));
    }

    #[test]
    fn flow_table_ipv4_ipv6_and_mapped_keys() {
        let mut t = FlowTable::new(8);
        let g6 = side(
            Pif::Tap,
            (v6("2001:db8:2::2"), 443),
            (v6("2001:db8::10"), 50000),
        );
        let h6 = side(
            Pif::Host,
            (v6("2001:db8:1::1"), 50000),
            (v6("2001:db8:2::2"), 443),
        );
        let id6 = t.insert(Protocol::Tcp, g6, h6, Indexed::Both, 6).unwrap();
        // A dual-stack socket reports an IPv4 peer as IPv4-mapped.
        let mapped = side(
            Pif::Host,
            (v6("::ffff:192.0.2.1"), 8080),
            (v6("::ffff:198.51.100.2"), 33000),
        );
        let plain = side(
            Pif::Host,
            (v4([192, 0, 2, 1]), 8080),
            (v4([198, 51, 100, 2]), 33000),
        );
        let tap4 = side(
            Pif::Tap,
            (v4([198, 51, 100, 2]), 33000),
            (v4([192, 0, 2, 10]), 8080),
        );
        let id4 = t
            .insert(Protocol::Tcp, tap4, mapped, Indexed::Both, 4)
            .unwrap();
        assert_eq!(t.lookup(Protocol::Tcp, &g6), Some((id6, Side::Guest)));
        assert_eq!(t.lookup(Protocol::Tcp, &h6), Some((id6, Side::Host)));
        assert_eq!(t.lookup(Protocol::Tcp, &plain), Some((id4, Side::Host)));
        assert_eq!(t.lookup(Protocol::Tcp, &mapped), Some((id4, Side::Host)));
        assert_eq!(
            *t.get(id4).unwrap().side(Side::Host),
            plain,
            "stored as IPv4"
        );
        // ICMP and ICMPv6 flows with the same addresses are distinct.
        let echo = side(
            Pif::Tap,
            (v4([198, 51, 100, 2]), 7),
            (v4([192, 0, 2, 10]), 7),
        );
        let a = t
            .insert(Protocol::Icmp, echo, plain, Indexed::Guest, 0)
            .unwrap();
        let b = t
            .insert(Protocol::Icmpv6, echo, plain, Indexed::Guest, 0)
            .unwrap();
        assert_eq!(t.lookup(Protocol::Icmp, &echo), Some((a, Side::Guest)));
        assert_eq!(t.lookup(Protocol::Icmpv6, &echo), Some((b, Side::Guest)));
    }

    #[test]
    fn flow_table_port_65535_and_zero_are_ordinary_ports() {
        let mut t = FlowTable::new(4);
        let top = side(
            Pif::Tap,
            (v4([10, 0, 0, 1]), u16::MAX),
            (v4([10, 0, 0, 2]), u16::MAX),
        );
        let zero = FlowSide {
            our_port: 0,
            end_port: 0,
            ..top
        };
        let a = t
            .insert(Protocol::Udp, top, zero, Indexed::Both, 1)
            .unwrap();
        assert_eq!(t.lookup(Protocol::Udp, &top), Some((a, Side::Guest)));
        assert_eq!(t.lookup(Protocol::Udp, &zero), Some((a, Side::Host)));
        assert_eq!(
            t.lookup(
                Protocol::Udp,
                &FlowSide {
                    end_port: 65534,
                    ..top
                }
            ),
            None
        );
    }

    #[test]
    fn flow_table_refuses_duplicate_indexed_sides() {
        let mut t = FlowTable::new(8);
        let (g, h) = tcp_sides(5);
        let (g2, h2) = tcp_sides(6);
        t.insert(Protocol::Tcp, g, h, Indexed::Both, 0).unwrap();
        let dup = t.insert(Protocol::Tcp, g, h2, Indexed::Both, 0);
        assert_eq!(dup, Err(InsertError::Duplicate));
        let dup = t.insert(Protocol::Tcp, g2, h, Indexed::Both, 0);
        assert_eq!(dup, Err(InsertError::Duplicate));
        let same = t.insert(Protocol::Tcp, g2, g2, Indexed::Both, 0);
        assert_eq!(same, Err(InsertError::Duplicate));
        assert_eq!(t.len(), 1, "failed insertions leave nothing behind");
        // An unindexed side may repeat another flow's.
        let id = t.insert(Protocol::Tcp, g2, h, Indexed::Guest, 0).unwrap();
        assert_eq!(t.lookup(Protocol::Tcp, &h).unwrap().0.index(), 0);
        assert_eq!(t.lookup(Protocol::Tcp, &g2), Some((id, Side::Guest)));
    }

    #[test]
    fn flow_table_vacant_reserves_an_id_and_cancels_on_drop() {
        let mut t = FlowTable::new(2);
        let (g, h) = tcp_sides(1);
        // Reserved, then dropped without inserting.
        let promised = t.vacant(Protocol::Tcp, g, h, Indexed::Guest).unwrap().id();
        assert!(t.is_empty());
        assert_eq!(t.lookup(Protocol::Tcp, &g), None);
        let v = t.vacant(Protocol::Tcp, g, h, Indexed::Guest).unwrap();
        assert_eq!(v.id(), promised);
        assert_eq!(v.insert(3), promised);
        assert_eq!(t.lookup(Protocol::Tcp, &g), Some((promised, Side::Guest)));
        assert_eq!(t.lookup(Protocol::Tcp, &h), None, "host side not indexed");
    }

    #[test]
    fn flow_table_set_side_moves_the_index() {
        let mut t = FlowTable::new(4);
        let (g, h) = tcp_sides(1);
        let id = t.insert(Protocol::Udp, g, h, Indexed::Guest, 0).unwrap();
        let bound = FlowSide {
            our_port: 61000,
            ..h
        };
        t.set_side(id, Side::Host, bound, true).unwrap();
        assert_eq!(t.lookup(Protocol::Udp, &bound), Some((id, Side::Host)));
        assert_eq!(*t.get(id).unwrap().side(Side::Host), bound);
        let moved = FlowSide {
            our_port: 61001,
            ..bound
        };
        t.set_side(id, Side::Host, moved, true).unwrap();
        assert_eq!(t.lookup(Protocol::Udp, &bound), None);
        assert_eq!(t.lookup(Protocol::Udp, &moved), Some((id, Side::Host)));
        t.set_side(id, Side::Host, moved, true).unwrap();
        assert_eq!(t.lookup(Protocol::Udp, &moved), Some((id, Side::Host)));
        t.set_side(id, Side::Host, moved, false).unwrap();
        assert_eq!(t.lookup(Protocol::Udp, &moved), None);
        // A key another flow indexes is refused; nothing changes.
        let (g2, h2) = tcp_sides(2);
        let other = t.insert(Protocol::Udp, g2, h2, Indexed::Both, 0).unwrap();
        assert_eq!(
            t.set_side(id, Side::Host, h2, true),
            Err(InsertError::Duplicate)
        );
        assert_eq!(
            t.set_side(id, Side::Host, g, true),
            Err(InsertError::Duplicate)
        );
        assert_eq!(*t.get(id).unwrap().side(Side::Host), moved);
        assert_eq!(t.lookup(Protocol::Udp, &h2), Some((other, Side::Host)));
        t.remove(id);
        assert_eq!(t.lookup(Protocol::Udp, &g), None);
        assert_eq!(t.lookup(Protocol::Udp, &g2), Some((other, Side::Guest)));
    }

    #[test]
    fn flow_table_retain_and_iter_see_every_live_flow() {
        let mut t = FlowTable::new(64);
        for port in 0..50 {
            insert_tcp(&mut t, port, port.into()).unwrap();
        }
        let mut seen = 0;
        t.retain(|id, flow| {
            seen += 1;
            assert_eq!(flow.side(Side::Guest).end_port as u32, flow.state);
            assert_eq!(id.index() as u32, flow.state, "slots filled in order");
            flow.state % 3 != 0
        });
        assert_eq!((seen, t.len()), (50, 33));
        let mut states: Vec<u32> = t.iter().map(|(_, f)| f.state).collect();
        states.sort_unstable();
        assert_eq!(states, (0..50).filter(|s| s % 3 != 0).collect::<Vec<_>>());
        for (id, flow) in t.iter() {
            let g = flow.side(Side::Guest);
            assert_eq!(t.lookup(Protocol::Tcp, g), Some((id, Side::Guest)));
        }
        for port in (0..50).filter(|p| p % 3 == 0) {
            assert_eq!(t.lookup(Protocol::Tcp, &tcp_sides(port).0), None);
        }
        t.retain(|_, _| false);
        assert!(t.is_empty() && t.iter().next().is_none());
    }

    #[test]
    fn flow_table_holds_the_default_capacity() {
        let mut t = FlowTable::new(DEFAULT_CAPACITY);
        let key = |i: u32, pif| {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i));
            side(pif, (a, 80), (a, 1))
        };
        for i in 0..DEFAULT_CAPACITY as u32 {
            let (g, h) = (key(i, Pif::Tap), key(i, Pif::Host));
            t.insert(Protocol::Tcp, g, h, Indexed::Both, i).unwrap();
        }
        // No side was refused for its chain length (ProbeLimit) on the way.
        let (g, h) = (key(u32::MAX, Pif::Tap), key(u32::MAX, Pif::Host));
        let full = t.insert(Protocol::Tcp, g, h, Indexed::Both, 0);
        assert_eq!(full, Err(InsertError::Full));
        for i in (0..DEFAULT_CAPACITY as u32).step_by(97) {
            let (id, _) = t.lookup(Protocol::Tcp, &key(i, Pif::Host)).unwrap();
            assert_eq!(t.get(id).unwrap().state, i);
        }
    }

    use crate::flow::testing::Rng;

    fn random_side(rng: &mut Rng, pif: Pif) -> FlowSide {
        // Few distinct values, so keys repeat and duplicates are exercised.
        let addr = |rng: &mut Rng| match rng.below(3) {
            0 => v4([192, 0, 2, rng.below(4) as u8]),
            1 => v6(&format!("2001:db8::{}", rng.below(4))),
            _ => v6(&format!("::ffff:192.0.2.{}", rng.below(4))),
        };
        side(
            pif,
            (addr(rng), [0, 1, 65535][rng.below(3) as usize]),
            (addr(rng), rng.below(6) as u16 + 65530),
        )
    }

    /// Random inserts, removals and side changes, checked against a model.
    fn check_against_model<S: BuildHasher>(mut t: FlowTable<u64, S>, seed: u64, ops: usize) {
        let cap = t.capacity();
        let mut rng = Rng(seed);
        let mut keys: HashMap<(Protocol, FlowSide), (FlowId, Side)> = HashMap::new();
        let mut flows: HashMap<FlowId, (Protocol, [FlowSide; 2], [bool; 2], u64)> = HashMap::new();
        let protos = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp];
        for op in 0..ops as u64 {
            let proto = protos[rng.below(3) as usize];
            let sides = [
                random_side(&mut rng, Pif::Tap),
                random_side(&mut rng, Pif::Host),
            ];
            let indexed = [
                Indexed::Neither,
                Indexed::Guest,
                Indexed::Host,
                Indexed::Both,
            ][rng.below(4) as usize];
            match rng.below(10) {
                0..=4 => {
                    let canon = sides.map(FlowSide::canonical);
                    let want = [Side::Guest, Side::Host].map(|s| indexed.has(s));
                    let clash = (0..2).any(|i| want[i] && keys.contains_key(&(proto, canon[i])))
                        || (indexed == Indexed::Both && canon[0] == canon[1]);
                    let res = t.insert(proto, sides[0], sides[1], indexed, op);
                    match res {
                        Err(InsertError::Full) => assert_eq!(flows.len(), cap),
                        Err(InsertError::Duplicate) => assert!(clash),
                        Err(InsertError::ProbeLimit) => {}
                        Ok(id) => {
                            assert!(!clash && flows.len() < cap);
                            for (i, s) in [Side::Guest, Side::Host].into_iter().enumerate() {
                                if want[i] {
                                    keys.insert((proto, canon[i]), (id, s));
                                }
                            }
                            assert!(flows.insert(id, (proto, canon, want, op)).is_none());
                        }
                    }
                }
                5..=7 => {
                    let Some(&id) = flows.keys().nth(rng.below(flows.len() as u64 + 1) as usize)
                    else {
                        continue;
                    };
                    let (proto, canon, want, state) = flows.remove(&id).unwrap();
                    for i in 0..2 {
                        if want[i] {
                            keys.remove(&(proto, canon[i]));
                        }
                    }
                    assert_eq!(t.remove(id).unwrap().state, state);
                    assert!(t.get(id).is_none());
                }
                8 => {
                    let Some(&id) = flows.keys().nth(rng.below(flows.len() as u64 + 1) as usize)
                    else {
                        continue;
                    };
                    let s = if rng.below(2) == 0 {
                        Side::Guest
                    } else {
                        Side::Host
                    };
                    let index = rng.below(2) == 0;
                    let new = sides[s as usize].canonical();
                    let entry = flows.get_mut(&id).unwrap();
                    let (proto, i, o) = (entry.0, s as usize, s.other() as usize);
                    let same = entry.2[i] && entry.1[i] == new;
                    let clash = index
                        && !same
                        && (keys.contains_key(&(proto, new)) || (entry.2[o] && entry.1[o] == new));
                    match t.set_side(id, s, new, index) {
                        Err(InsertError::Duplicate) => assert!(clash),
                        Err(e) => assert_eq!(e, InsertError::ProbeLimit),
                        Ok(()) => {
                            assert!(!clash);
                            if entry.2[i] {
                                keys.remove(&(proto, entry.1[i]));
                            }
                            if index {
                                keys.insert((proto, new), (id, s));
                            }
                            entry.1[i] = new;
                            entry.2[i] = index;
                        }
                    }
                }
                _ => {
                    let key = sides[rng.below(2) as usize];
                    assert_eq!(
                        t.lookup(proto, &key),
                        keys.get(&(proto, key.canonical())).copied()
                    );
                }
            }
            assert_eq!(t.len(), flows.len());
        }
        for (&(proto, key), &found) in &keys {
            assert_eq!(t.lookup(proto, &key), Some(found));
        }
        for (&id, (proto, canon, _, state)) in &flows {
            let f = t.get(id).unwrap();
            assert_eq!((f.proto(), f.sides, f.state), (*proto, *canon, *state));
        }
        assert_eq!(t.iter().count(), flows.len());
    }

    #[test]
    fn flow_table_random_operations_match_a_model() {
        for (seed, cap) in [(1, 1), (2, 7), (3, 64), (4, 300), (5, 2000)] {
            check_against_model(FlowTable::new(cap), seed, 20_000);
        }
    }

    /// Hashes every key to one of four values: long clusters that wrap
    /// around the bucket array, to stress probing and backward shifts.
    #[derive(Default)]
    struct Clustered(u64);

    impl Hasher for Clustered {
        fn finish(&self) -> u64 {
            // Homes at the very end of the array, so chains wrap.
            self.0 % 4 + u64::from(u32::MAX) - 3
        }

        fn write(&mut self, bytes: &[u8]) {
            self.0 = bytes.iter().map(|&b| u64::from(b)).sum();
        }
    }

    #[test]
    fn flow_table_colliding_hashes_match_a_model() {
        let t = FlowTable::build(40, BuildHasherDefault::<Clustered>::default());
        check_against_model(t, 6, 20_000);
    }

    #[test]
    fn flow_table_refuses_chains_past_the_probe_limit() {
        let mut t = FlowTable::build(MAX_PROBE + 8, BuildHasherDefault::<Clustered>::default());
        let mut ids = Vec::new();
        let mut n = 0u16;
        // Keys whose bytes sum to one value all share a home bucket.
        let key = |n: u16| {
            let (hi, lo) = ((n / 255) as u8, (n % 255) as u8);
            side(
                Pif::Tap,
                (v4([hi, lo, 0, 0]), 0),
                (v4([0, 0, 255 - hi, 255 - lo]), 0),
            )
        };
        loop {
            let g = key(n);
            let h = FlowSide {
                pif: Pif::Host,
                ..g
            };
            match t.insert(Protocol::Udp, g, h, Indexed::Guest, 0) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    assert_eq!(e, InsertError::ProbeLimit);
                    break;
                }
            }
            n += 1;
        }
        assert_eq!(ids.len(), MAX_PROBE);
        assert_eq!(t.lookup(Protocol::Udp, &key(n)), None);
        t.remove(ids[0]);
        assert!(
            t.insert(Protocol::Udp, key(n), key(n), Indexed::Guest, 0)
                .is_ok()
        );
        for (i, id) in ids.iter().enumerate().skip(1) {
            assert_eq!(
                t.lookup(Protocol::Udp, &key(i as u16)),
                Some((*id, Side::Guest))
            );
        }
    }
}
