<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="de_DE" sourcelanguage="en">
<context>
    <name></name>
    <message>
        <source>Overview</source>
        <translation>Übersicht</translation>
    </message>
    <message>
        <source>Resources</source>
        <translation>Ressourcen</translation>
    </message>
    <message>
        <source>Training</source>
        <translation>Training</translation>
    </message>
    <message>
        <source>Personas</source>
        <translation>Personas</translation>
    </message>
    <message>
        <source>Village health</source>
        <translation>Netzwerk-Gesundheit</translation>
    </message>
    <message>
        <source>Credits</source>
        <translation>Credits</translation>
    </message>
    <message>
        <source>Log</source>
        <translation>Protokoll</translation>
    </message>
    <message>
        <source>Grove Village</source>
        <translation>Grove Village</translation>
    </message>
    <message>
        <source>Pages (Ctrl+1 to Ctrl+7)</source>
        <translation>Seiten (Strg+1 bis Strg+7)</translation>
    </message>
    <message>
        <source>Pages</source>
        <translation>Seiten</translation>
    </message>
    <message>
        <source>Notice</source>
        <translation>Hinweis</translation>
    </message>
    <message>
        <source>Grove: starting…</source>
        <translation>Grove: startet …</translation>
    </message>
    <message>
        <source>waiting for checks</source>
        <translation>wartet auf Prüfungen</translation>
    </message>
    <message>
        <source>verified</source>
        <translation>geprüft</translation>
    </message>
    <message>
        <source>rejected</source>
        <translation>abgelehnt</translation>
    </message>
    <message>
        <source>When</source>
        <translation>Wann</translation>
    </message>
    <message>
        <source>Work</source>
        <translation>Arbeit</translation>
    </message>
    <message>
        <source>For</source>
        <translation>Für</translation>
    </message>
    <message>
        <source>Status</source>
        <translation>Status</translation>
    </message>
    <message>
        <source>Why</source>
        <translation>Warum</translation>
    </message>
    <message>
        <source>serving a model</source>
        <translation>ein Modell bereitstellen</translation>
    </message>
    <message>
        <source>training</source>
        <translation>trainieren</translation>
    </message>
    <message>
        <source>averaging</source>
        <translation>mitteln</translation>
    </message>
    <message>
        <source>relaying</source>
        <translation>weiterleiten</translation>
    </message>
    <message>
        <source>stake taken by rulings</source>
        <translation>durch Entscheide eingezogener Einsatz</translation>
    </message>
    <message>
        <source>challenges</source>
        <translation>Beanstandungen</translation>
    </message>
    <message>
        <source>sample served</source>
        <translation>bereitgestellte Stichprobe</translation>
    </message>
    <message>
        <source>samples served</source>
        <translation>bereitgestellte Stichproben</translation>
    </message>
    <message>
        <source>training sample</source>
        <translation>Trainingsstichprobe</translation>
    </message>
    <message>
        <source>training samples</source>
        <translation>Trainingsstichproben</translation>
    </message>
    <message>
        <source>averaging round</source>
        <translation>Mittelungsrunde</translation>
    </message>
    <message>
        <source>averaging rounds</source>
        <translation>Mittelungsrunden</translation>
    </message>
    <message>
        <source>byte relayed</source>
        <translation>weitergeleitetes Byte</translation>
    </message>
    <message>
        <source>bytes relayed</source>
        <translation>weitergeleitete Bytes</translation>
    </message>
    <message>
        <source>Verified credit earned from villages this village trusts: pre-trusted ones, and those whose work passed its own sampled checks. Credit from villages nobody vouches for may not be honoured by the network.</source>
        <translation>Geprüfte Credits von Dörfern, denen dieses Dorf vertraut: vorab vertrauenswürdige und solche, deren Arbeit seine eigenen Stichprobenprüfungen bestanden hat. Credits von Dörfern, für die niemand bürgt, erkennt das Netzwerk womöglich nicht an.</translation>
    </message>
    <message>
        <source>Honoured credit</source>
        <translation>Anerkannte Credits</translation>
    </message>
    <message>
        <source>Service levels: the credits this village stakes to serve checked and assured work (a failed check takes half), what rulings on its work took, what its challenges of others&apos; work won or cost, and how its own checks of others came out.</source>
        <translation>Dienstgüte: die Credits, die dieses Dorf als Einsatz hinterlegt, um geprüfte und abgesicherte Arbeit zu leisten (eine fehlgeschlagene Prüfung kostet die Hälfte), was Entscheide über seine Arbeit eingezogen haben, was seine Beanstandungen fremder Arbeit eingebracht oder gekostet haben und wie seine eigenen Prüfungen anderer ausgefallen sind.</translation>
    </message>
    <message>
        <source>Stake and checks</source>
        <translation>Einsatz und Prüfungen</translation>
    </message>
    <message>
        <source>Verified credit by kind of work</source>
        <translation>Geprüfte Credits nach Art der Arbeit</translation>
    </message>
    <message>
        <source>Nothing verified yet.</source>
        <translation>Noch nichts geprüft.</translation>
    </message>
    <message>
        <source>Credit by kind</source>
        <translation>Credits nach Art</translation>
    </message>
    <message>
        <source>Verified credit per day (last 30 days)</source>
        <translation>Geprüfte Credits pro Tag (letzte 30 Tage)</translation>
    </message>
    <message>
        <source>No verified credit in the last 30 days.</source>
        <translation>Keine geprüften Credits in den letzten 30 Tagen.</translation>
    </message>
    <message>
        <source>Verified credit per day</source>
        <translation>Geprüfte Credits pro Tag</translation>
    </message>
    <message>
        <source>Credit history</source>
        <translation>Credit-Verlauf</translation>
    </message>
    <message>
        <source>The latest credit events</source>
        <translation>Die neuesten Credit-Ereignisse</translation>
    </message>
    <message>
        <source>Credit events</source>
        <translation>Credit-Ereignisse</translation>
    </message>
    <message>
        <source>Export CSV…</source>
        <translation>Als CSV exportieren …</translation>
    </message>
    <message>
        <source>Save every credit event as a CSV file</source>
        <translation>Jedes Credit-Ereignis als CSV-Datei speichern</translation>
    </message>
    <message>
        <source>Export credits as CSV</source>
        <translation>Credits als CSV exportieren</translation>
    </message>
    <message>
        <source>Balance:</source>
        <translation>Guthaben:</translation>
    </message>
    <message>
        <source>Honoured:</source>
        <translation>Anerkannt:</translation>
    </message>
    <message>
        <source>Earned:</source>
        <translation>Verdient:</translation>
    </message>
    <message>
        <source>Pending / verified / rejected:</source>
        <translation>Ausstehend / geprüft / abgelehnt:</translation>
    </message>
    <message>
        <source>What work earns:</source>
        <translation>Was Arbeit einbringt:</translation>
    </message>
    <message>
        <source>Stake and checks:</source>
        <translation>Einsatz und Prüfungen:</translation>
    </message>
    <message>
        <source>The ledger is not open yet.</source>
        <translation>Das Kontobuch ist noch nicht geöffnet.</translation>
    </message>
    <message>
        <source>{0} (verified, from {1})</source>
        <translation>{0} (geprüft, aus {1})</translation>
    </message>
    <message>
        <source>{0} earned from villages you trust ({1} trusted: pre-trusted, whose work passed this village&apos;s checks, or whose work villages you trust checked)</source>
        <translation>{0} von Dörfern verdient, denen Sie vertrauen (vertrauenswürdig: {1}; vorab vertrauenswürdig, deren Arbeit die Prüfungen dieses Dorfes bestanden hat oder deren Arbeit Dörfer Ihres Vertrauens geprüft haben)</translation>
    </message>
    <message>
        <source>today {0} · this week {1}</source>
        <translation>heute {0} · diese Woche {1}</translation>
    </message>
    <message>
        <source>{0} waiting for checks · {1} verified · {2} rejected</source>
        <translation>{0} warten auf Prüfungen · {1} geprüft · {2} abgelehnt</translation>
    </message>
    <message>
        <source>{0}: {1}</source>
        <translation>{0}: {1}</translation>
    </message>
    <message>
        <source>{0}: {1:g} a unit</source>
        <translation>{0}: {1:g} pro Einheit</translation>
    </message>
    <message>
        <source>Village id: {0}</source>
        <translation>Dorf-ID: {0}</translation>
    </message>
    <message>
        <source>Nothing to export yet: no credit has been recorded</source>
        <translation>Noch nichts zu exportieren: es wurden keine Credits verbucht</translation>
    </message>
    <message>
        <source>Export credits</source>
        <translation>Credits exportieren</translation>
    </message>
    <message>
        <source>CSV files (*.csv)</source>
        <translation>CSV-Dateien (*.csv)</translation>
    </message>
    <message>
        <source>Nothing to export: no ledger yet.</source>
        <translation>Nichts zu exportieren: noch kein Kontobuch.</translation>
    </message>
    <message>
        <source>Exported {0} credit events to {1}.</source>
        <translation>{0} Credit-Ereignisse nach {1} exportiert.</translation>
    </message>
    <message>
        <source>staking {0}, backed by {1} of verified work</source>
        <translation>setzt {0} ein, gedeckt durch {1} geprüfte Arbeit</translation>
    </message>
    <message>
        <source>not staking, so it serves basic work only</source>
        <translation>kein Einsatz, daher nur einfache Arbeit</translation>
    </message>
    <message>
        <source>{0} taken by rulings</source>
        <translation>{0} durch Entscheide eingezogen</translation>
    </message>
    <message>
        <source>challenges won {0}</source>
        <translation>Beanstandungen brachten {0} ein</translation>
    </message>
    <message>
        <source>challenges cost {0}</source>
        <translation>Beanstandungen kosteten {0}</translation>
    </message>
    <message>
        <source>this village checked the work of {0}: {1} passed, {2} failed</source>
        <translation>dieses Dorf hat die Arbeit anderer geprüft ({0}): {1} bestanden, {2} nicht bestanden</translation>
    </message>
    <message>
        <source>no check of others&apos; work yet</source>
        <translation>noch keine Prüfung fremder Arbeit</translation>
    </message>
    <message>
        <source>CPU</source>
        <translation>CPU</translation>
    </message>
    <message>
        <source>GPU</source>
        <translation>GPU</translation>
    </message>
    <message>
        <source>GPU 16G+</source>
        <translation>GPU 16G+</translation>
    </message>
    <message>
        <source>Lending compute</source>
        <translation>Leiht Rechenleistung</translation>
    </message>
    <message>
        <source>Allowance in use</source>
        <translation>Genutztes Kontingent</translation>
    </message>
    <message>
        <source>Reachable directly</source>
        <translation>Direkt erreichbar</translation>
    </message>
    <message>
        <source>Only through a relay</source>
        <translation>Nur über ein Relay</translation>
    </message>
    <message>
        <source>Personas awake</source>
        <translation>Aktive Personas</translation>
    </message>
    <message>
        <source>Round trip (median)</source>
        <translation>Umlaufzeit (Median)</translation>
    </message>
    <message>
        <source>Village</source>
        <translation>Dorf</translation>
    </message>
    <message>
        <source>Tier</source>
        <translation>Stufe</translation>
    </message>
    <message>
        <source>Region</source>
        <translation>Region</translation>
    </message>
    <message>
        <source>Reach</source>
        <translation>Erreichbarkeit</translation>
    </message>
    <message>
        <source>Upload</source>
        <translation>Upload</translation>
    </message>
    <message>
        <source>Free for agents</source>
        <translation>Frei für Agenten</translation>
    </message>
    <message>
        <source>Checked here</source>
        <translation>Hier geprüft</translation>
    </message>
    <message>
        <source>Connected</source>
        <translation>Verbunden</translation>
    </message>
    <message>
        <source>Villages by compute tier</source>
        <translation>Dörfer nach Rechenstufe</translation>
    </message>
    <message>
        <source>No village records yet.</source>
        <translation>Noch keine Dorf-Einträge.</translation>
    </message>
    <message>
        <source>How many known villages are in each compute tier (this one included)</source>
        <translation>Wie viele bekannte Dörfer in jeder Rechenstufe sind (dieses eingeschlossen)</translation>
    </message>
    <message>
        <source>Tiers histogram</source>
        <translation>Histogramm der Stufen</translation>
    </message>
    <message>
        <source>The network&apos;s health is averaged every telemetry round; the chart starts after two rounds.</source>
        <translation>Die Gesundheit des Netzwerks wird in jeder Telemetrierunde gemittelt; das Diagramm beginnt nach zwei Runden.</translation>
    </message>
    <message>
        <source>Villages in the network (estimated)</source>
        <translation>Dörfer im Netzwerk (geschätzt)</translation>
    </message>
    <message>
        <source>The network&apos;s estimated size, one point per telemetry round</source>
        <translation>Die geschätzte Größe des Netzwerks, ein Punkt pro Telemetrierunde</translation>
    </message>
    <message>
        <source>Network size chart</source>
        <translation>Diagramm der Netzwerkgröße</translation>
    </message>
    <message>
        <source>Villages lending compute</source>
        <translation>Dörfer, die Rechenleistung leihen</translation>
    </message>
    <message>
        <source>The share of villages lending compute, one point per telemetry round</source>
        <translation>Der Anteil der Dörfer, die Rechenleistung leihen, ein Punkt pro Telemetrierunde</translation>
    </message>
    <message>
        <source>Contributing chart</source>
        <translation>Diagramm der Beiträge</translation>
    </message>
    <message>
        <source>This village, its region and the whole network, averaged without a central server</source>
        <translation>Dieses Dorf, seine Region und das ganze Netzwerk, gemittelt ohne zentralen Server</translation>
    </message>
    <message>
        <source>Aggregates</source>
        <translation>Mittelwerte</translation>
    </message>
    <message>
        <source>This village</source>
        <translation>Dieses Dorf</translation>
    </message>
    <message>
        <source>Network</source>
        <translation>Netzwerk</translation>
    </message>
    <message>
        <source>Villages whose signed records this village holds, nearest first</source>
        <translation>Dörfer, deren signierte Einträge dieses Dorf hält, die nächsten zuerst</translation>
    </message>
    <message>
        <source>Nearby villages</source>
        <translation>Dörfer in der Nähe</translation>
    </message>
    <message>
        <source>The network holds {0} (counted {1})</source>
        <translation>Das Netzwerk umfasst {0} (gezählt {1})</translation>
    </message>
    <message>
        <source>The network&apos;s size is not measured yet (the first count comes after a telemetry round)</source>
        <translation>Die Größe des Netzwerks ist noch nicht gemessen (die erste Zählung folgt nach einer Telemetrierunde)</translation>
    </message>
    <message>
        <source>{0}. This village is connected to {1} and holds the signed records of {2}.</source>
        <translation>{0}. Dieses Dorf ist verbunden mit: {1}; es hält signierte Einträge von: {2}.</translation>
    </message>
    <message>
        <source> Last round: {0}</source>
        <translation> Letzte Runde: {0}</translation>
    </message>
    <message>
        <source>yes</source>
        <translation>ja</translation>
    </message>
    <message>
        <source>no</source>
        <translation>nein</translation>
    </message>
    <message>
        <source>{0}
Village id: {1}</source>
        <translation>{0}
Dorf-ID: {1}</translation>
    </message>
    <message>
        <source>not checked</source>
        <translation>nicht geprüft</translation>
    </message>
    <message>
        <source>, {0:,} failed</source>
        <translation>, {0:,} nicht bestanden</translation>
    </message>
    <message>
        <source>connected to {0}</source>
        <translation>verbunden: {0}</translation>
    </message>
    <message>
        <source>{0} failed: {1} (restarting in {2:.0f} s)</source>
        <translation>{0} ist ausgefallen: {1} (Neustart in {2:.0f} s)</translation>
    </message>
    <message>
        <source>switched on</source>
        <translation>eingeschaltet</translation>
    </message>
    <message>
        <source>switched off</source>
        <translation>ausgeschaltet</translation>
    </message>
    <message>
        <source>paused until {0}</source>
        <translation>pausiert bis {0}</translation>
    </message>
    <message>
        <source>settings changed: </source>
        <translation>Einstellungen geändert: </translation>
    </message>
    <message>
        <source>the node stopped: {0}</source>
        <translation>der Knoten wurde beendet: {0}</translation>
    </message>
    <message>
        <source>Recent events of this village</source>
        <translation>Letzte Ereignisse dieses Dorfes</translation>
    </message>
    <message>
        <source>Event log</source>
        <translation>Ereignisprotokoll</translation>
    </message>
    <message>
        <source>Copy to clipboard</source>
        <translation>In die Zwischenablage kopieren</translation>
    </message>
    <message>
        <source>Copy every line above, e.g. for a bug report</source>
        <translation>Alle Zeilen oben kopieren, z. B. für einen Fehlerbericht</translation>
    </message>
    <message>
        <source>copied {0} lines</source>
        <translation>{0} Zeilen kopiert</translation>
    </message>
    <message>
        <source>Mon</source>
        <translation>Mo</translation>
    </message>
    <message>
        <source>Tue</source>
        <translation>Di</translation>
    </message>
    <message>
        <source>Wed</source>
        <translation>Mi</translation>
    </message>
    <message>
        <source>Thu</source>
        <translation>Do</translation>
    </message>
    <message>
        <source>Fri</source>
        <translation>Fr</translation>
    </message>
    <message>
        <source>Sat</source>
        <translation>Sa</translation>
    </message>
    <message>
        <source>Sun</source>
        <translation>So</translation>
    </message>
    <message>
        <source>Restart the village</source>
        <translation>Dorf neu starten</translation>
    </message>
    <message>
        <source>Start the node again (it stopped or failed)</source>
        <translation>Den Knoten erneut starten (er wurde beendet oder ist ausgefallen)</translation>
    </message>
    <message>
        <source>Lend this computer to the network</source>
        <translation>Diesen Computer dem Netzwerk leihen</translation>
    </message>
    <message>
        <source>On: the network may use this computer within your limits. Takes effect at once; remembered across restarts.</source>
        <translation>Ein: Das Netzwerk darf diesen Computer innerhalb Ihrer Grenzen nutzen. Wirkt sofort und bleibt über Neustarts erhalten.</translation>
    </message>
    <message>
        <source>Participation switch</source>
        <translation>Schalter für die Teilnahme</translation>
    </message>
    <message>
        <source>Changing participation</source>
        <translation>Teilnahme wird geändert</translation>
    </message>
    <message>
        <source>Start Grove when I log in</source>
        <translation>Grove bei der Anmeldung starten</translation>
    </message>
    <message>
        <source>Adds or removes Grove from your desktop&apos;s login items</source>
        <translation>Fügt Grove den Anmeldeobjekten Ihres Desktops hinzu oder entfernt es</translation>
    </message>
    <message>
        <source>How much it uses now</source>
        <translation>Wie viel es gerade nutzt</translation>
    </message>
    <message>
        <source>Processor</source>
        <translation>Prozessor</translation>
    </message>
    <message>
        <source>Graphics card</source>
        <translation>Grafikkarte</translation>
    </message>
    <message>
        <source>Download</source>
        <translation>Download</translation>
    </message>
    <message>
        <source>Memory</source>
        <translation>Arbeitsspeicher</translation>
    </message>
    <message>
        <source>{0}:</source>
        <translation>{0}:</translation>
    </message>
    <message>
        <source>What it has done</source>
        <translation>Was es geleistet hat</translation>
    </message>
    <message>
        <source>Today:</source>
        <translation>Heute:</translation>
    </message>
    <message>
        <source>Past week:</source>
        <translation>Letzte Woche:</translation>
    </message>
    <message>
        <source>Work for:</source>
        <translation>Arbeit für:</translation>
    </message>
    <message>
        <source>Processor time lent, per day</source>
        <translation>Geliehene Prozessorzeit pro Tag</translation>
    </message>
    <message>
        <source>Nothing measured yet.</source>
        <translation>Noch nichts gemessen.</translation>
    </message>
    <message>
        <source>Hours of processor time Grove used on this computer each of the last 7 days (measured, all cores together)</source>
        <translation>Stunden Prozessorzeit, die Grove an jedem der letzten 7 Tage auf diesem Computer genutzt hat (gemessen, alle Kerne zusammen)</translation>
    </message>
    <message>
        <source>Processor time chart</source>
        <translation>Diagramm der Prozessorzeit</translation>
    </message>
    <message>
        <source>Anything wrong?</source>
        <translation>Stimmt etwas nicht?</translation>
    </message>
    <message>
        <source>Show or hide the technical details: ids, addresses, hardware, key store</source>
        <translation>Technische Details zeigen oder verbergen: IDs, Adressen, Hardware, Schlüsselspeicher</translation>
    </message>
    <message>
        <source>Details</source>
        <translation>Details</translation>
    </message>
    <message>
        <source>A name other gardeners see beside this village&apos;s own two-word name (at most 32 letters, digits and spaces); empty: only the two-word name</source>
        <translation>Ein Name, den andere Gärtner neben dem eigenen Zwei-Wort-Namen dieses Dorfes sehen (höchstens 32 Buchstaben, Ziffern und Leerzeichen); leer: nur der Zwei-Wort-Name</translation>
    </message>
    <message>
        <source>Village name</source>
        <translation>Name des Dorfes</translation>
    </message>
    <message>
        <source>Save name</source>
        <translation>Namen speichern</translation>
    </message>
    <message>
        <source>Put this name in the village&apos;s signed record</source>
        <translation>Diesen Namen in den signierten Eintrag des Dorfes aufnehmen</translation>
    </message>
    <message>
        <source>Save village name</source>
        <translation>Namen des Dorfes speichern</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>Kopieren</translation>
    </message>
    <message>
        <source>Copy this village&apos;s id (what identifies it; its name is only a label)</source>
        <translation>Die ID dieses Dorfes kopieren (sie identifiziert es; der Name ist nur eine Beschriftung)</translation>
    </message>
    <message>
        <source>Copy village id</source>
        <translation>Dorf-ID kopieren</translation>
    </message>
    <message>
        <source>Off by default: turn on update_check and set update_url (the signed release manifest) to hear about new releases; nothing is ever installed without you</source>
        <translation>Standardmäßig aus: Schalten Sie update_check ein und setzen Sie update_url (das signierte Release-Manifest), um von neuen Versionen zu erfahren; ohne Sie wird nie etwas installiert</translation>
    </message>
    <message>
        <source>Villages this one is connected to, with round-trip time and whether the connection is direct or relayed; hover for a village&apos;s id</source>
        <translation>Dörfer, mit denen dieses verbunden ist, mit Umlaufzeit und ob die Verbindung direkt oder über ein Relay läuft; mit der Maus darüber zeigt sich die ID eines Dorfes</translation>
    </message>
    <message>
        <source>Name:</source>
        <translation>Name:</translation>
    </message>
    <message>
        <source>Village id:</source>
        <translation>Dorf-ID:</translation>
    </message>
    <message>
        <source>Listening on:</source>
        <translation>Lauscht auf:</translation>
    </message>
    <message>
        <source>Running for:</source>
        <translation>Läuft seit:</translation>
    </message>
    <message>
        <source>Compute tier:</source>
        <translation>Rechenstufe:</translation>
    </message>
    <message>
        <source>Hardware:</source>
        <translation>Hardware:</translation>
    </message>
    <message>
        <source>Reachability:</source>
        <translation>Erreichbarkeit:</translation>
    </message>
    <message>
        <source>Villages known:</source>
        <translation>Bekannte Dörfer:</translation>
    </message>
    <message>
        <source>Village key:</source>
        <translation>Dorfschlüssel:</translation>
    </message>
    <message>
        <source>Updates:</source>
        <translation>Aktualisierungen:</translation>
    </message>
    <message>
        <source>Saving the village&apos;s name</source>
        <translation>Der Name des Dorfes wird gespeichert</translation>
    </message>
    <message>
        <source>Restarting the village…</source>
        <translation>Das Dorf wird neu gestartet …</translation>
    </message>
    <message>
        <source>Changing start-on-login failed: {0}</source>
        <translation>Der Start bei der Anmeldung ließ sich nicht ändern: {0}</translation>
    </message>
    <message>
        <source>a name of your own (beside {0})</source>
        <translation>ein eigener Name (neben {0})</translation>
    </message>
    <message>
        <source>version {0}; </source>
        <translation>Version {0}; </translation>
    </message>
    <message>
        <source>the update check is off</source>
        <translation>die Suche nach Aktualisierungen ist aus</translation>
    </message>
    <message>
        <source>{0} from their signed records; {1} in the routing table</source>
        <translation>{0} aus ihren signierten Einträgen; {1} in der Routing-Tabelle</translation>
    </message>
    <message>
        <source>Connected villages ({0})</source>
        <translation>Verbundene Dörfer ({0})</translation>
    </message>
    <message>
        <source>, {0:.1f} ms</source>
        <translation>, {0:.1f} ms</translation>
    </message>
    <message>
        <source>Village id: {0}
Address: {1}</source>
        <translation>Dorf-ID: {0}
Adresse: {1}</translation>
    </message>
    <message>
        <source>Our persona</source>
        <translation>Unsere Persona</translation>
    </message>
    <message>
        <source>Talking with</source>
        <translation>Im Gespräch mit</translation>
    </message>
    <message>
        <source>Messages</source>
        <translation>Nachrichten</translation>
    </message>
    <message>
        <source>Agreed by everyone</source>
        <translation>Von allen bestätigt</translation>
    </message>
    <message>
        <source>State</source>
        <translation>Zustand</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Name</translation>
    </message>
    <message>
        <source>Availability</source>
        <translation>Verfügbarkeit</translation>
    </message>
    <message>
        <source>Capacity</source>
        <translation>Kapazität</translation>
    </message>
    <message>
        <source>Backend</source>
        <translation>Backend</translation>
    </message>
    <message>
        <source>Edit persona</source>
        <translation>Persona bearbeiten</translation>
    </message>
    <message>
        <source>Add a persona</source>
        <translation>Eine Persona hinzufügen</translation>
    </message>
    <message>
        <source>What other villages see (1 to {0} characters)</source>
        <translation>Was andere Dörfer sehen (1 bis {0} Zeichen)</translation>
    </message>
    <message>
        <source>A short public description (at most {0} characters)</source>
        <translation>Eine kurze öffentliche Beschreibung (höchstens {0} Zeichen)</translation>
    </message>
    <message>
        <source>Description</source>
        <translation>Beschreibung</translation>
    </message>
    <message>
        <source>What answers for this persona</source>
        <translation>Was für diese Persona antwortet</translation>
    </message>
    <message>
        <source>Whether the persona runs now</source>
        <translation>Ob die Persona gerade läuft</translation>
    </message>
    <message>
        <source>Who may start a conversation with it</source>
        <translation>Wer ein Gespräch mit ihr beginnen darf</translation>
    </message>
    <message>
        <source>Conversations it may hold at once</source>
        <translation>Gespräche, die sie gleichzeitig führen darf</translation>
    </message>
    <message>
        <source>Description:</source>
        <translation>Beschreibung:</translation>
    </message>
    <message>
        <source>Backend:</source>
        <translation>Backend:</translation>
    </message>
    <message>
        <source>Status:</source>
        <translation>Status:</translation>
    </message>
    <message>
        <source>Availability:</source>
        <translation>Verfügbarkeit:</translation>
    </message>
    <message>
        <source>Capacity:</source>
        <translation>Kapazität:</translation>
    </message>
    <message>
        <source>Give the persona a name.</source>
        <translation>Geben Sie der Persona einen Namen.</translation>
    </message>
    <message>
        <source>The description is {0} characters; at most {1}.</source>
        <translation>Die Beschreibung hat {0} Zeichen; höchstens {1}.</translation>
    </message>
    <message>
        <source>Start a conversation</source>
        <translation>Ein Gespräch beginnen</translation>
    </message>
    <message>
        <source>Persona to talk with</source>
        <translation>Persona, mit der gesprochen wird</translation>
    </message>
    <message>
        <source>Messages each</source>
        <translation>Nachrichten je Persona</translation>
    </message>
    <message>
        <source>Our persona:</source>
        <translation>Unsere Persona:</translation>
    </message>
    <message>
        <source>Talk with:</source>
        <translation>Sprechen mit:</translation>
    </message>
    <message>
        <source>Messages each:</source>
        <translation>Nachrichten je Persona:</translation>
    </message>
    <message>
        <source>Start</source>
        <translation>Beginnen</translation>
    </message>
    <message>
        <source>This village&apos;s personas; double-click to edit</source>
        <translation>Die Personas dieses Dorfes; Doppelklick zum Bearbeiten</translation>
    </message>
    <message>
        <source>Add…</source>
        <translation>Hinzufügen …</translation>
    </message>
    <message>
        <source>Add a persona to this village</source>
        <translation>Diesem Dorf eine Persona hinzufügen</translation>
    </message>
    <message>
        <source>Edit…</source>
        <translation>Bearbeiten …</translation>
    </message>
    <message>
        <source>Change the selected persona</source>
        <translation>Die gewählte Persona ändern</translation>
    </message>
    <message>
        <source>Close to others</source>
        <translation>Für andere schließen</translation>
    </message>
    <message>
        <source>Open or close the selected persona to conversations with other villages</source>
        <translation>Die gewählte Persona für Gespräche mit anderen Dörfern öffnen oder schließen</translation>
    </message>
    <message>
        <source>Availability toggle</source>
        <translation>Verfügbarkeit umschalten</translation>
    </message>
    <message>
        <source>Remove…</source>
        <translation>Entfernen …</translation>
    </message>
    <message>
        <source>Remove the selected persona (asks first)</source>
        <translation>Die gewählte Persona entfernen (mit Rückfrage)</translation>
    </message>
    <message>
        <source>Start a conversation…</source>
        <translation>Ein Gespräch beginnen …</translation>
    </message>
    <message>
        <source>Let one of this village&apos;s personas talk with a neighbour&apos;s persona that is open to it</source>
        <translation>Eine Persona dieses Dorfes mit einer offenen Persona eines Nachbarn sprechen lassen</translation>
    </message>
    <message>
        <source>Conversations with personas of other villages; select one for its transcript</source>
        <translation>Gespräche mit Personas anderer Dörfer; wählen Sie eines für sein Protokoll</translation>
    </message>
    <message>
        <source>Conversations</source>
        <translation>Gespräche</translation>
    </message>
    <message>
        <source>Stop our persona</source>
        <translation>Unsere Persona anhalten</translation>
    </message>
    <message>
        <source>Our persona says nothing more in the selected conversation (the others may still finish)</source>
        <translation>Unsere Persona sagt im gewählten Gespräch nichts mehr (die anderen dürfen noch zu Ende sprechen)</translation>
    </message>
    <message>
        <source>Stop the conversation</source>
        <translation>Das Gespräch beenden</translation>
    </message>
    <message>
        <source>The selected conversation, in the order every village agrees on</source>
        <translation>Das gewählte Gespräch, in der Reihenfolge, auf die sich alle Dörfer einigen</translation>
    </message>
    <message>
        <source>Transcript</source>
        <translation>Gesprächsprotokoll</translation>
    </message>
    <message>
        <source>The AI personas this village hosts. Other villages see their name, status and availability in this village&apos;s signed record.</source>
        <translation>Die KI-Personas, die dieses Dorf beherbergt. Andere Dörfer sehen Name, Status und Verfügbarkeit im signierten Eintrag dieses Dorfes.</translation>
    </message>
    <message>
        <source>Open to others</source>
        <translation>Für andere öffnen</translation>
    </message>
    <message>
        <source>Let one of this village&apos;s personas talk with a neighbour&apos;s open persona</source>
        <translation>Eine Persona dieses Dorfes mit der offenen Persona eines Nachbarn sprechen lassen</translation>
    </message>
    <message>
        <source>Needs a persona here and a neighbour&apos;s persona that is open to conversations (none is known now)</source>
        <translation>Braucht hier eine Persona und eine für Gespräche offene Persona eines Nachbarn (derzeit ist keine bekannt)</translation>
    </message>
    <message>
        <source>Asking {0}…</source>
        <translation>{0} wird gefragt …</translation>
    </message>
    <message>
        <source>Not started: {0}</source>
        <translation>Nicht begonnen: {0}</translation>
    </message>
    <message>
        <source>Talking with {0}.</source>
        <translation>Im Gespräch mit {0}.</translation>
    </message>
    <message>
        <source>Added {0}.</source>
        <translation>{0} hinzugefügt.</translation>
    </message>
    <message>
        <source>Saved {0}.</source>
        <translation>{0} gespeichert.</translation>
    </message>
    <message>
        <source>{0} is now {1}.</source>
        <translation>{0} ist jetzt {1}.</translation>
    </message>
    <message>
        <source>Remove persona</source>
        <translation>Persona entfernen</translation>
    </message>
    <message>
        <source>Remove {0} from this village?</source>
        <translation>{0} aus diesem Dorf entfernen?</translation>
    </message>
    <message>
        <source>Removed {0}.</source>
        <translation>{0} entfernt.</translation>
    </message>
    <message>
        <source>saving…</source>
        <translation>wird gespeichert …</translation>
    </message>
    <message>
        <source>Not saved: {0}</source>
        <translation>Nicht gespeichert: {0}</translation>
    </message>
    <message>
        <source>{0} of {1} entries</source>
        <translation>{0} von {1} Einträgen</translation>
    </message>
    <message>
        <source>not yet</source>
        <translation>noch nicht</translation>
    </message>
    <message>
        <source>equivocated: {0}</source>
        <translation>widersprüchlich: {0}</translation>
    </message>
    <message>
        <source>stopped here</source>
        <translation>hier beendet</translation>
    </message>
    <message>
        <source>finished</source>
        <translation>abgeschlossen</translation>
    </message>
    <message>
        <source>talking</source>
        <translation>im Gespräch</translation>
    </message>
    <message>
        <source>Not stopped: {0}</source>
        <translation>Nicht angehalten: {0}</translation>
    </message>
    <message>
        <source>{0} stopped.</source>
        <translation>{0} angehalten.</translation>
    </message>
    <message>
        <source>CPU share</source>
        <translation>CPU-Anteil</translation>
    </message>
    <message>
        <source>Max threads</source>
        <translation>Höchstzahl an Threads</translation>
    </message>
    <message>
        <source>Memory cap</source>
        <translation>Speichergrenze</translation>
    </message>
    <message>
        <source>Use GPUs</source>
        <translation>GPUs nutzen</translation>
    </message>
    <message>
        <source>GPU memory cap</source>
        <translation>Grenze für GPU-Speicher</translation>
    </message>
    <message>
        <source>Which GPUs</source>
        <translation>Welche GPUs</translation>
    </message>
    <message>
        <source>Upload cap</source>
        <translation>Upload-Grenze</translation>
    </message>
    <message>
        <source>Download cap</source>
        <translation>Download-Grenze</translation>
    </message>
    <message>
        <source>Cap local network too</source>
        <translation>Auch das lokale Netzwerk begrenzen</translation>
    </message>
    <message>
        <source>Other caps during</source>
        <translation>Andere Grenzen während</translation>
    </message>
    <message>
        <source>Upload cap then</source>
        <translation>Upload-Grenze dann</translation>
    </message>
    <message>
        <source>Download cap then</source>
        <translation>Download-Grenze dann</translation>
    </message>
    <message>
        <source>Only when idle</source>
        <translation>Nur wenn unbenutzt</translation>
    </message>
    <message>
        <source>Idle after</source>
        <translation>Unbenutzt nach</translation>
    </message>
    <message>
        <source>Pause on battery</source>
        <translation>Im Akkubetrieb pausieren</translation>
    </message>
    <message>
        <source>Resume above</source>
        <translation>Fortsetzen ab</translation>
    </message>
    <message>
        <source>Pause while running</source>
        <translation>Pausieren, solange läuft</translation>
    </message>
    <message>
        <source>Pause on metered</source>
        <translation>Bei getakteter Verbindung pausieren</translation>
    </message>
    <message>
        <source>Pause when full screen</source>
        <translation>Bei Vollbild pausieren</translation>
    </message>
    <message>
        <source>Weekly schedule</source>
        <translation>Wochenplan</translation>
    </message>
    <message>
        <source>GPU temperature limit</source>
        <translation>GPU-Temperaturgrenze</translation>
    </message>
    <message>
        <source>Cool down by</source>
        <translation>Abkühlen um</translation>
    </message>
    <message>
        <source>Live usage against your limits</source>
        <translation>Aktuelle Nutzung im Vergleich zu Ihren Grenzen</translation>
    </message>
    <message>
        <source>{0} the network&apos;s work uses now, as a share of your limit</source>
        <translation>{0}, den die Arbeit des Netzwerks gerade nutzt, als Anteil Ihrer Grenze</translation>
    </message>
    <message>
        <source>{0} usage</source>
        <translation>Nutzung: {0}</translation>
    </message>
    <message>
        <source>Compute:</source>
        <translation>Rechnen:</translation>
    </message>
    <message>
        <source>Test my limits</source>
        <translation>Meine Grenzen testen</translation>
    </message>
    <message>
        <source>Run a synthetic job for {0:g} s through the governor and see the usage it really gets</source>
        <translation>Eine synthetische Aufgabe {0:g} s lang durch den Regler laufen lassen und sehen, welche Nutzung sie tatsächlich bekommt</translation>
    </message>
    <message>
        <source>What this computer lends the network. Changes apply at once and are kept in settings.toml.</source>
        <translation>Was dieser Computer dem Netzwerk leiht. Änderungen wirken sofort und werden in settings.toml gespeichert.</translation>
    </message>
    <message>
        <source>auto</source>
        <translation>automatisch</translation>
    </message>
    <message>
        <source>only when plugged in</source>
        <translation>nur am Netzteil</translation>
    </message>
    <message>
        <source>all of it</source>
        <translation>alles</translation>
    </message>
    <message>
        <source>no cap</source>
        <translation>keine Grenze</translation>
    </message>
    <message>
        <source>any time, e.g. mon-fri 18:00-08:00; sat-sun</source>
        <translation>jederzeit, z. B. mon-fri 18:00-08:00; sat-sun</translation>
    </message>
    <message>
        <source>all, or e.g. 0,1</source>
        <translation>alle, oder z. B. 0,1</translation>
    </message>
    <message>
        <source>none, or e.g. steam, zoom</source>
        <translation>keine, oder z. B. steam, zoom</translation>
    </message>
    <message>
        <source>never, e.g. mon-fri 09:00-18:00</source>
        <translation>nie, z. B. mon-fri 09:00-18:00</translation>
    </message>
    <message>
        <source>running for {0:g} s…</source>
        <translation>läuft {0:g} s …</translation>
    </message>
    <message>
        <source>failed: {0}</source>
        <translation>fehlgeschlagen: {0}</translation>
    </message>
    <message>
        <source>{0:.1f}% of this computer (limit {1}%)</source>
        <translation>{0:.1f} % dieses Computers (Grenze {1} %)</translation>
    </message>
    <message>
        <source>{0:.0f} MB (limit {1} MB; {2:.0f} MB held for network work)</source>
        <translation>{0:.0f} MB (Grenze {1} MB; {2:.0f} MB für Netzwerkarbeit reserviert)</translation>
    </message>
    <message>
        <source>refused: {0}</source>
        <translation>abgelehnt: {0}</translation>
    </message>
    <message>
        <source>(limit {0} kB/s)</source>
        <translation>(Grenze {0} kB/s)</translation>
    </message>
    <message>
        <source>(no cap)</source>
        <translation>(keine Grenze)</translation>
    </message>
    <message>
        <source>may run {0} thread(s) at {1:.0%}</source>
        <translation>darf {0} Thread(s) zu {1:.0%} ausführen</translation>
    </message>
    <message>
        <source>; {0} running now</source>
        <translation>; {0} laufen gerade</translation>
    </message>
    <message>
        <source>Project</source>
        <translation>Projekt</translation>
    </message>
    <message>
        <source>Step</source>
        <translation>Schritt</translation>
    </message>
    <message>
        <source>Test accuracy</source>
        <translation>Testgenauigkeit</translation>
    </message>
    <message>
        <source>Samples</source>
        <translation>Stichproben</translation>
    </message>
    <message>
        <source>Villages</source>
        <translation>Dörfer</translation>
    </message>
    <message>
        <source>Rule</source>
        <translation>Regel</translation>
    </message>
    <message>
        <source>Opt in to a project to let this computer train a shared model with other villages, within the limits you set. Updates are combined with a Byzantine-robust rule, so a broken or malicious village cannot steer the model.</source>
        <translation>Nehmen Sie an einem Projekt teil, damit dieser Computer innerhalb Ihrer Grenzen mit anderen Dörfern ein gemeinsames Modell trainiert. Aktualisierungen werden mit einer byzantinisch robusten Regel zusammengeführt, sodass ein defektes oder böswilliges Dorf das Modell nicht lenken kann.</translation>
    </message>
    <message>
        <source>{0} (last step: {1} - {2})</source>
        <translation>{0} (letzter Schritt: {1} - {2})</translation>
    </message>
    <message>
        <source>Training projects: check one to opt in, uncheck it to opt out</source>
        <translation>Trainingsprojekte: anhaken, um teilzunehmen, Haken entfernen, um auszusteigen</translation>
    </message>
    <message>
        <source>Training projects</source>
        <translation>Trainingsprojekte</translation>
    </message>
    <message>
        <source>Where this computer&apos;s share of the training runs: the GPU your limits allow, or the CPU and why</source>
        <translation>Wo der Trainingsanteil dieses Computers läuft: auf der GPU, die Ihre Grenzen erlauben, oder auf der CPU und warum</translation>
    </message>
    <message>
        <source>Runs on</source>
        <translation>Läuft auf</translation>
    </message>
    <message>
        <source>Other villages&apos; updates this village trained again from the same state to check them: an update that is not what its training gives costs its sender the credit</source>
        <translation>Aktualisierungen anderer Dörfer, die dieses Dorf zur Prüfung vom selben Stand aus nachtrainiert hat: Eine Aktualisierung, die nicht dem Ergebnis ihres Trainings entspricht, kostet ihren Absender die Credits</translation>
    </message>
    <message>
        <source>Checks</source>
        <translation>Prüfungen</translation>
    </message>
    <message>
        <source>Samples contributed:</source>
        <translation>Beigetragene Stichproben:</translation>
    </message>
    <message>
        <source>Runs on:</source>
        <translation>Läuft auf:</translation>
    </message>
    <message>
        <source>Checks of others&apos; work:</source>
        <translation>Prüfungen fremder Arbeit:</translation>
    </message>
    <message>
        <source>Serve model blocks to other villages (SWARM)</source>
        <translation>Modellblöcke für andere Dörfer bereitstellen (SWARM)</translation>
    </message>
    <message>
        <source>Hold part of a shared model and compute it for other villages, within your limits</source>
        <translation>Einen Teil eines gemeinsamen Modells halten und ihn innerhalb Ihrer Grenzen für andere Dörfer berechnen</translation>
    </message>
    <message>
        <source>Serve model blocks</source>
        <translation>Modellblöcke bereitstellen</translation>
    </message>
    <message>
        <source>Train the SWARM model with this computer&apos;s data</source>
        <translation>Das SWARM-Modell mit den Daten dieses Computers trainieren</translation>
    </message>
    <message>
        <source>Send this village&apos;s own data through the villages that serve the model&apos;s blocks, and learn from it</source>
        <translation>Die eigenen Daten dieses Dorfes durch die Dörfer schicken, die die Blöcke des Modells bereitstellen, und daraus lernen</translation>
    </message>
    <message>
        <source>Train through SWARM</source>
        <translation>Über SWARM trainieren</translation>
    </message>
    <message>
        <source>not decided yet</source>
        <translation>noch nicht entschieden</translation>
    </message>
    <message>
        <source>{0} passed, {1} failed</source>
        <translation>{0} bestanden, {1} nicht bestanden</translation>
    </message>
    <message>
        <source>none yet</source>
        <translation>noch keine</translation>
    </message>
    <message>
        <source>Block serving: {0}</source>
        <translation>Bereitstellung von Blöcken: {0}</translation>
    </message>
    <message>
        <source>Blocks {0}..{1} of {2} · {3:g} samples/s · {4} requests in the last hour · {5} queued</source>
        <translation>Blöcke {0}..{1} von {2} · {3:g} Stichproben/s · {4} Anfragen in der letzten Stunde · {5} in der Warteschlange</translation>
    </message>
    <message>
        <source>SWARM training: {0}</source>
        <translation>SWARM-Training: {0}</translation>
    </message>
    <message>
        <source>not measured yet</source>
        <translation>noch nicht gemessen</translation>
    </message>
    <message>
        <source>; untrained: {0:.3f}</source>
        <translation>; untrainiert: {0:.3f}</translation>
    </message>
    <message>
        <source>
Loss {0:.3f} · held-out {1}{2} · {3:,} micro-batches · {4:g} samples/s</source>
        <translation>
Verlust {0:.3f} · zurückgehaltene Daten {1}{2} · {3:,} Mikro-Batches · {4:g} Stichproben/s</translation>
    </message>
    <message>
        <source>Joining {0}</source>
        <translation>Tritt {0} bei</translation>
    </message>
    <message>
        <source>Leaving {0}</source>
        <translation>Verlässt {0}</translation>
    </message>
    <message>
        <source>Serving model blocks</source>
        <translation>Modellblöcke werden bereitgestellt</translation>
    </message>
    <message>
        <source>Stopping block serving</source>
        <translation>Bereitstellung von Blöcken wird beendet</translation>
    </message>
    <message>
        <source>Training through the swarm</source>
        <translation>Training über den Schwarm</translation>
    </message>
    <message>
        <source>Stopping SWARM training</source>
        <translation>SWARM-Training wird beendet</translation>
    </message>
    <message>
        <source>on battery</source>
        <translation>im Akkubetrieb</translation>
    </message>
    <message>
        <source>outside your schedule</source>
        <translation>außerhalb Ihres Zeitplans</translation>
    </message>
    <message>
        <source>the computer is in use (idle-only)</source>
        <translation>der Computer wird benutzt (nur wenn unbenutzt)</translation>
    </message>
    <message>
        <source>a program you chose is running</source>
        <translation>ein von Ihnen gewähltes Programm läuft</translation>
    </message>
    <message>
        <source>the network connection is metered</source>
        <translation>die Netzwerkverbindung ist getaktet</translation>
    </message>
    <message>
        <source>credits: not measured ({0})</source>
        <translation>Credits: nicht gemessen ({0})</translation>
    </message>
    <message>
        <source>credits: {0} earned today</source>
        <translation>Credits: heute {0} verdient</translation>
    </message>
    <message>
        <source>, {0} pending</source>
        <translation>, {0} ausstehend</translation>
    </message>
    <message>
        <source>; balance {0}</source>
        <translation>; Guthaben {0}</translation>
    </message>
    <message>
        <source> (crediting paused: {0})</source>
        <translation> (Gutschriften pausiert: {0})</translation>
    </message>
    <message>
        <source>Grove: {0}
{1}
{2}</source>
        <translation>Grove: {0}
{1}
{2}</translation>
    </message>
    <message>
        <source>needs attention - </source>
        <translation>braucht Aufmerksamkeit - </translation>
    </message>
    <message>
        <source>paused by a rule: {0}.</source>
        <translation>durch eine Regel pausiert: {0}.</translation>
    </message>
    <message>
        <source>paused by a rule: GPU {0} above your temperature limit.</source>
        <translation>durch eine Regel pausiert: GPU {0} über Ihrer Temperaturgrenze.</translation>
    </message>
    <message>
        <source>participating, but no other village can be reached yet.</source>
        <translation>nimmt teil, aber noch ist kein anderes Dorf erreichbar.</translation>
    </message>
    <message>
        <source>other villages cannot reach this one.</source>
        <translation>andere Dörfer können dieses nicht erreichen.</translation>
    </message>
    <message>
        <source>contributing now, with {0}.</source>
        <translation>trägt gerade bei (verbunden: {0}).</translation>
    </message>
    <message>
        <source>participating with {0}; no work right now.</source>
        <translation>nimmt teil (verbunden: {0}); gerade keine Arbeit.</translation>
    </message>
    <message>
        <source>Grove paused</source>
        <translation>Grove pausiert</translation>
    </message>
    <message>
        <source>Grove reaches the network through a relay</source>
        <translation>Grove erreicht das Netzwerk über ein Relay</translation>
    </message>
    <message>
        <source>A Grove update is available</source>
        <translation>Eine Aktualisierung von Grove ist verfügbar</translation>
    </message>
    <message>
        <source>Grove needs your attention</source>
        <translation>Grove braucht Ihre Aufmerksamkeit</translation>
    </message>
    <message>
        <source>{0:.0f} s ago</source>
        <translation>vor {0:.0f} s</translation>
    </message>
    <message>
        <source>{0:.0f} min ago</source>
        <translation>vor {0:.0f} min</translation>
    </message>
    <message>
        <source>{0:.1f} h ago</source>
        <translation>vor {0:.1f} h</translation>
    </message>
    <message>
        <source>Your desktop shows no system tray, so Grove lives in this window; closing it stops Grove. (On GNOME, the AppIndicator extension gives Grove its tray icon.)</source>
        <translation>Ihr Desktop zeigt keinen Infobereich, daher lebt Grove in diesem Fenster; wer es schließt, beendet Grove. (Unter GNOME gibt die Erweiterung AppIndicator Grove sein Symbol im Infobereich.)</translation>
    </message>
    <message>
        <source>Participate</source>
        <translation>Teilnehmen</translation>
    </message>
    <message>
        <source>Lend this computer to the Grove network</source>
        <translation>Diesen Computer dem Grove-Netzwerk leihen</translation>
    </message>
    <message>
        <source>Pause for 1 hour</source>
        <translation>1 Stunde pausieren</translation>
    </message>
    <message>
        <source>Pause until tomorrow</source>
        <translation>Bis morgen pausieren</translation>
    </message>
    <message>
        <source>Resume</source>
        <translation>Fortsetzen</translation>
    </message>
    <message>
        <source>Resuming</source>
        <translation>Wird fortgesetzt</translation>
    </message>
    <message>
        <source>The node stopped: start it again</source>
        <translation>Der Knoten wurde beendet: erneut starten</translation>
    </message>
    <message>
        <source>Notifications</source>
        <translation>Benachrichtigungen</translation>
    </message>
    <message>
        <source>Tell me when Grove pauses, needs a relay or needs me</source>
        <translation>Mir sagen, wenn Grove pausiert, ein Relay braucht oder mich braucht</translation>
    </message>
    <message>
        <source>Open dashboard</source>
        <translation>Dashboard öffnen</translation>
    </message>
    <message>
        <source>Quit Grove</source>
        <translation>Grove beenden</translation>
    </message>
    <message>
        <source>, test accuracy {0:.1f}%</source>
        <translation>, Testgenauigkeit {0:.1f} %</translation>
    </message>
    <message>
        <source>{0} (step {1}{2}; rule {3})</source>
        <translation>{0} (Schritt {1}{2}; Regel {3})</translation>
    </message>
    <message>
        <source>Changing notifications</source>
        <translation>Benachrichtigungen werden geändert</translation>
    </message>
    <message>
        <source>Pausing</source>
        <translation>Wird pausiert</translation>
    </message>
    <message>
        <source>Grove is a peer-to-peer network of AI personas run by gardeners like you. This computer becomes a village: it finds other villages without any central server, relays for homes behind NATs when it can, and, if you say yes, lends some of its computing power to the network within limits you set.</source>
        <translation>Grove ist ein Peer-to-Peer-Netzwerk von KI-Personas, betrieben von Gärtnern wie Ihnen. Dieser Computer wird zu einem Dorf: Er findet andere Dörfer ohne zentralen Server, leitet, wenn er kann, für Haushalte hinter NATs weiter und leiht dem Netzwerk, wenn Sie zustimmen, einen Teil seiner Rechenleistung innerhalb der Grenzen, die Sie festlegen.</translation>
    </message>
    <message>
        <source>• A network node: it talks to other villages (Kademlia DHT, relays, hole punching).
• Village health: small averages of anonymous numbers (how many villages, how many contribute), shared Moshpit-style with a few villages at a time.
• Only if you participate: compute jobs for the network, never above your CPU, memory, GPU, bandwidth and temperature limits, and paused on battery, outside your schedule or while you use the computer if you ask.
Nothing on this computer is shared: no files, no browsing, no personal data.</source>
        <translation>• Ein Netzwerkknoten: Er spricht mit anderen Dörfern (Kademlia-DHT, Relays, Hole Punching).
• Netzwerk-Gesundheit: kleine Mittelwerte anonymer Zahlen (wie viele Dörfer, wie viele beitragen), im Moshpit-Verfahren mit jeweils wenigen Dörfern geteilt.
• Nur wenn Sie teilnehmen: Rechenaufgaben für das Netzwerk, nie über Ihren Grenzen für CPU, Speicher, GPU, Bandbreite und Temperatur, und auf Wunsch pausiert im Akkubetrieb, außerhalb Ihres Zeitplans oder während Sie den Computer benutzen.
Nichts auf diesem Computer wird geteilt: keine Dateien, kein Surfverlauf, keine persönlichen Daten.</translation>
    </message>
    <message>
        <source>Welcome to Grove Village</source>
        <translation>Willkommen bei Grove Village</translation>
    </message>
    <message>
        <source>What Grove is</source>
        <translation>Was Grove ist</translation>
    </message>
    <message>
        <source>What will run on this computer</source>
        <translation>Was auf diesem Computer laufen wird</translation>
    </message>
    <message>
        <source>This computer, and what it lends</source>
        <translation>Dieser Computer und was er leiht</translation>
    </message>
    <message>
        <source>Pause while on battery</source>
        <translation>Im Akkubetrieb pausieren</translation>
    </message>
    <message>
        <source>Only while I am not using the computer</source>
        <translation>Nur während ich den Computer nicht benutze</translation>
    </message>
    <message>
        <source>CPU share (suggested):</source>
        <translation>CPU-Anteil (Vorschlag):</translation>
    </message>
    <message>
        <source>Every limit can be changed later on the dashboard&apos;s Resources page.</source>
        <translation>Jede Grenze lässt sich später auf der Seite „Ressourcen“ des Dashboards ändern.</translation>
    </message>
    <message>
        <source>Your choice</source>
        <translation>Ihre Wahl</translation>
    </message>
    <message>
        <source>Yes, let this computer participate</source>
        <translation>Ja, dieser Computer soll teilnehmen</translation>
    </message>
    <message>
        <source>Off unless you tick it; switch it any time from the tray</source>
        <translation>Aus, solange Sie es nicht anhaken; jederzeit über das Symbol im Infobereich umschaltbar</translation>
    </message>
    <message>
        <source>Adds Grove to your desktop&apos;s login items</source>
        <translation>Fügt Grove den Anmeldeobjekten Ihres Desktops hinzu</translation>
    </message>
    <message>
        <source>Grove does not use this computer for the network until you say yes. Without it, the village still connects and shows the network (it lends nothing).</source>
        <translation>Grove nutzt diesen Computer erst für das Netzwerk, wenn Sie zustimmen. Ohne Zustimmung verbindet sich das Dorf trotzdem und zeigt das Netzwerk (es leiht nichts).</translation>
    </message>
    <message>
        <source>Saving your choices</source>
        <translation>Ihre Wahl wird gespeichert</translation>
    </message>
    <message>
        <source>Start on login could not be set: {0}</source>
        <translation>Der Start bei der Anmeldung ließ sich nicht einrichten: {0}</translation>
    </message>
    <message>
        <source>processor only</source>
        <translation>nur Prozessor</translation>
    </message>
    <message>
        <source>graphics card</source>
        <translation>Grafikkarte</translation>
    </message>
    <message>
        <source>large graphics card</source>
        <translation>große Grafikkarte</translation>
    </message>
    <message>
        <source>you are using the computer (idle-only)</source>
        <translation>Sie benutzen den Computer (nur wenn unbenutzt)</translation>
    </message>
    <message>
        <source>a full-screen program is running</source>
        <translation>ein Vollbildprogramm läuft</translation>
    </message>
    <message>
        <source>Nothing needs your attention.</source>
        <translation>Nichts braucht Ihre Aufmerksamkeit.</translation>
    </message>
    <message>
        <source>Grove stopped because of an error</source>
        <translation>Grove wurde wegen eines Fehlers beendet</translation>
    </message>
    <message>
        <source>See the log.</source>
        <translation>Siehe Protokoll.</translation>
    </message>
    <message>
        <source>Grove is starting</source>
        <translation>Grove startet</translation>
    </message>
    <message>
        <source>It joins the network in a few seconds.</source>
        <translation>Es tritt dem Netzwerk in wenigen Sekunden bei.</translation>
    </message>
    <message>
        <source>Grove is not running</source>
        <translation>Grove läuft nicht</translation>
    </message>
    <message>
        <source>Nothing is lent while it is stopped.</source>
        <translation>Solange es beendet ist, wird nichts geliehen.</translation>
    </message>
    <message>
        <source>Grove is not using this computer</source>
        <translation>Grove nutzt diesen Computer nicht</translation>
    </message>
    <message>
        <source>You switched lending off. Switch it on to help the network.</source>
        <translation>Sie haben das Leihen ausgeschaltet. Schalten Sie es ein, um dem Netzwerk zu helfen.</translation>
    </message>
    <message>
        <source>Paused until {0}.</source>
        <translation>Pausiert bis {0}.</translation>
    </message>
    <message>
        <source>Paused while {0}.</source>
        <translation>Pausiert, solange {0}.</translation>
    </message>
    <message>
        <source>Waiting for the governor&apos;s first decision.</source>
        <translation>Wartet auf die erste Entscheidung des Reglers.</translation>
    </message>
    <message>
        <source>up to {0} of the processor</source>
        <translation>bis zu {0} des Prozessors</translation>
    </message>
    <message>
        <source>Grove is using this computer</source>
        <translation>Grove nutzt diesen Computer</translation>
    </message>
    <message>
        <source>{0}, within your limits ({1}).</source>
        <translation>{0}, innerhalb Ihrer Grenzen ({1}).</translation>
    </message>
    <message>
        <source>Grove is ready to use this computer</source>
        <translation>Grove ist bereit, diesen Computer zu nutzen</translation>
    </message>
    <message>
        <source>It may use {0}; no work needs it right now.</source>
        <translation>Es darf {0} nutzen; gerade braucht keine Arbeit ihn.</translation>
    </message>
    <message>
        <source>computing</source>
        <translation>rechnen</translation>
    </message>
    <message>
        <source>relaying for other villages</source>
        <translation>für andere Dörfer weiterleiten</translation>
    </message>
    <message>
        <source>your limit {0}</source>
        <translation>Ihre Grenze {0}</translation>
    </message>
    <message>
        <source>no limit set</source>
        <translation>keine Grenze gesetzt</translation>
    </message>
    <message>
        <source>{0} of this computer</source>
        <translation>{0} dieses Computers</translation>
    </message>
    <message>
        <source> (your limit {0} %)</source>
        <translation> (Ihre Grenze {0} %)</translation>
    </message>
    <message>
        <source> (your limit for the network&apos;s work {0:,} MB)</source>
        <translation> (Ihre Grenze für die Arbeit des Netzwerks {0:,} MB)</translation>
    </message>
    <message>
        <source>{0} of processor time, {1} sent, {2} received</source>
        <translation>{0} Prozessorzeit, {1} gesendet, {2} empfangen</translation>
    </message>
    <message>
        <source>processor time {0}</source>
        <translation>Prozessorzeit {0}</translation>
    </message>
    <message>
        <source>{0} earned</source>
        <translation>{0} verdient</translation>
    </message>
    <message>
        <source>credits {0}</source>
        <translation>Credits {0}</translation>
    </message>
    <message>
        <source>No village has signed for work today yet.</source>
        <translation>Heute hat noch kein Dorf Arbeit quittiert.</translation>
    </message>
    <message>
        <source> and {0}</source>
        <translation> und {0}</translation>
    </message>
    <message>
        <source>{0} today: {1}{2}.</source>
        <translation>{0} heute: {1}{2}.</translation>
    </message>
    <message>
        <source>Other villages cannot reach this one.</source>
        <translation>Andere Dörfer können dieses nicht erreichen.</translation>
    </message>
    <message>
        <source>Crediting is paused: {0}</source>
        <translation>Gutschriften sind pausiert: {0}</translation>
    </message>
    <message>
        <source>Not connected.</source>
        <translation>Nicht verbunden.</translation>
    </message>
    <message>
        <source>the network holds {0}</source>
        <translation>das Netzwerk umfasst {0}</translation>
    </message>
    <message>
        <source>the network&apos;s size is not measured yet</source>
        <translation>die Größe des Netzwerks ist noch nicht gemessen</translation>
    </message>
    <message>
        <source>Connected to {0}; {1}.</source>
        <translation>Verbunden: {0}; {1}.</translation>
    </message>
    <message>
        <source>not measured</source>
        <translation>nicht gemessen</translation>
    </message>
    <message>
        <source>village</source>
        <translation>Dorf</translation>
    </message>
    <message>
        <source>villages</source>
        <translation>Dörfer</translation>
    </message>
    <message>
        <source>other village</source>
        <translation>anderes Dorf</translation>
    </message>
    <message>
        <source>other villages</source>
        <translation>andere Dörfer</translation>
    </message>
    <message>
        <source>other</source>
        <translation>weiteres</translation>
    </message>
    <message>
        <source>others</source>
        <translation>weitere</translation>
    </message>
    <message>
        <source>receipt</source>
        <translation>Quittung</translation>
    </message>
    <message>
        <source>receipts</source>
        <translation>Quittungen</translation>
    </message>
    <message>
        <source>check</source>
        <translation>Prüfung</translation>
    </message>
    <message>
        <source>checks</source>
        <translation>Prüfungen</translation>
    </message>
    <message>
        <source>day</source>
        <translation>Tag</translation>
    </message>
    <message>
        <source>days</source>
        <translation>Tage</translation>
    </message>
    <message>
        <source>entry</source>
        <translation>Eintrag</translation>
    </message>
    <message>
        <source>entries</source>
        <translation>Einträge</translation>
    </message>
    <message>
        <source>persona</source>
        <translation>Persona</translation>
    </message>
    <message>
        <source>personas</source>
        <translation>Personas</translation>
    </message>
    <message>
        <source>0 credits</source>
        <translation>0 Credits</translation>
    </message>
    <message>
        <source>more than -0.01 credits</source>
        <translation>mehr als -0,01 Credits</translation>
    </message>
    <message>
        <source>less than 0.01 credits</source>
        <translation>weniger als 0,01 Credits</translation>
    </message>
    <message>
        <source>{0} credit</source>
        <translation>{0} Credit</translation>
    </message>
    <message>
        <source>{0} credits</source>
        <translation>{0} Credits</translation>
    </message>
    <message>
        <source>nothing</source>
        <translation>nichts</translation>
    </message>
    <message>
        <source>{0} per thousand {1}</source>
        <translation>{0} pro tausend {1}</translation>
    </message>
    <message>
        <source>{0} per million {1}</source>
        <translation>{0} pro Million {1}</translation>
    </message>
    <message>
        <source>{0} per billion {1}</source>
        <translation>{0} pro Milliarde {1}</translation>
    </message>
    <message>
        <source>{0} per {1}</source>
        <translation>{0} pro {1}</translation>
    </message>
    <message>
        <source>{0} per trillion {1}</source>
        <translation>{0} pro Billion {1}</translation>
    </message>
    <message>
        <source>{0} s</source>
        <translation>{0} s</translation>
    </message>
    <message>
        <source>{0} min</source>
        <translation>{0} min</translation>
    </message>
    <message>
        <source>{0} h</source>
        <translation>{0} h</translation>
    </message>
    <message>
        <source>just now</source>
        <translation>gerade eben</translation>
    </message>
    <message>
        <source>{0:.0f} h ago</source>
        <translation>vor {0:.0f} h</translation>
    </message>
    <message>
        <source>yesterday</source>
        <translation>gestern</translation>
    </message>
    <message>
        <source>{0:.0f} days ago</source>
        <translation>vor {0:.0f} Tagen</translation>
    </message>
    <message>
        <source>about {0} (±{1:,.0f})</source>
        <translation>etwa {0} (±{1:,.0f})</translation>
    </message>
</context>
</TS>
