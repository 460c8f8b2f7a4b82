export function ClientCard() { return <div class="screen"><h1>Client</h1></div> }
